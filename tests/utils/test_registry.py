import pytest

from pointcept_distill.utils.registry import Registry


@pytest.fixture
def reg():
    r = Registry("widgets")

    @r.register_module()
    class Gear:
        def __init__(self, teeth=8):
            self.teeth = teeth

    @r.register_module(["Sprocket", "Cog"])
    class Sprocket(Gear):
        pass

    return r


def test_build_from_type_string_and_kwargs(reg):
    obj = reg.build(dict(type="Gear", teeth=12))
    assert type(obj).__name__ == "Gear" and obj.teeth == 12


def test_build_does_not_mutate_cfg(reg):
    cfg = dict(type="Gear", teeth=3)
    reg.build(cfg)
    assert cfg == dict(type="Gear", teeth=3)


def test_aliases_and_class_type(reg):
    assert reg.get("Cog") is reg.get("Sprocket")
    assert reg.build(dict(type=reg.get("Gear"))).teeth == 8


def test_unknown_type_names_registry_and_closest(reg):
    with pytest.raises(KeyError) as err:
        reg.build(dict(type="Gaer"))
    assert "widgets" in str(err.value) and "'Gear'" in str(err.value)


def test_duplicate_registration_refused_unless_forced(reg):
    with pytest.raises(KeyError, match="already registered"):
        reg.register_module(name="Gear", module=object)
    reg.register_module(name="Gear", module=dict, force=True)
    assert reg.get("Gear") is dict


def test_constructor_error_prefixed_with_class_name(reg):
    with pytest.raises(TypeError, match="Gear"):
        reg.build(dict(type="Gear", wheels=3))
