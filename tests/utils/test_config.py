import textwrap

import pytest

from pointcept_distill.utils.config import Config, parse_options


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.fixture
def child(tmp_path):
    (tmp_path / "_base_").mkdir()
    write(tmp_path / "_base_" / "runtime.py", """
        seed = 1
        hooks = [dict(type="A"), dict(type="B", save_freq=None)]
        model = dict(type="M", backbone=dict(type="B", depth=2, width=8), head=dict(dim=3))
        optimizer = dict(type="AdamW", lr=0.1)
    """)
    return write(tmp_path / "child.py", """
        _base_ = ["_base_/runtime.py"]
        hooks = [dict(type="C")]
        model = dict(backbone=dict(depth=4), head=dict(_delete_=True, size=5))
        helper = "{{ fileBasenameNoExtension }}"
    """)


def test_base_inheritance_merges_dicts_and_replaces_lists(child):
    cfg = Config.fromfile(child)
    assert cfg.model.backbone == dict(type="B", depth=4, width=8)
    assert cfg.model.head == dict(size=5)
    assert cfg.hooks == [dict(type="C")]
    assert cfg.seed == 1 and cfg.helper == "child"


def test_options_parsing_matches_pointcept():
    parsed = parse_options(["a=1", "b=0.5", "c=true", "d=[1,2]", "e=(1,2)", "f=x,y", "g=None", "h=[1,[2,3]]"])
    assert parsed == dict(a=1, b=0.5, c=True, d=[1, 2], e=(1, 2), f=["x", "y"], g="None", h=[1, [2, 3]])


def test_merge_from_dict_dotted_and_list_index(child):
    cfg = Config.fromfile(child)
    cfg.merge_from_dict(parse_options(["model.backbone.depth=7", "hooks.0.save_freq=5", "new.key=[1,2]"]))
    assert cfg.model.backbone.depth == 7
    assert cfg.hooks[0] == dict(type="C", save_freq=5)
    assert cfg.new.key == [1, 2]
    with pytest.raises(KeyError, match="hooks.3"):
        cfg.merge_from_dict({"hooks.3.x": 1})


def test_dump_reloads_to_same_dict(child, tmp_path):
    cfg = Config.fromfile(child)
    cfg.merge_from_dict(parse_options(["e=(1,2)", "g=None"]))
    out = tmp_path / "dumped.py"
    cfg.dump(str(out))
    assert Config.fromfile(str(out)).to_dict() == cfg.to_dict()


def test_missing_config_file_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.py"):
        Config.fromfile(str(tmp_path / "nope.py"))


def test_missing_key_is_attribute_error(child):
    with pytest.raises(AttributeError, match="nothere"):
        Config.fromfile(child).nothere


def test_base_placeholder_copies_base_value(child, tmp_path):
    path = write(tmp_path / "grandchild.py", """
        _base_ = ["child.py"]
        teacher = {{ _base_.model }}
        width = {{ _base_.model.backbone.width }}
        model = dict(backbone=dict(width=1))
    """)
    cfg = Config.fromfile(path)
    assert cfg.teacher.backbone == dict(type="B", depth=4, width=8)
    assert cfg.width == 8 and cfg.model.backbone.width == 1


def test_unknown_base_placeholder_named(child, tmp_path):
    path = write(tmp_path / "bad.py", """
        _base_ = ["child.py"]
        x = {{ _base_.model.nothere }}
    """)
    with pytest.raises(RuntimeError, match="model.nothere"):
        Config.fromfile(path)
