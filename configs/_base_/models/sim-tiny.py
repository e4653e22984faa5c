# The tiny PT-v3m1 of the simulator configs (tests, CPU smoke runs, the cross-dataset matrix), as the changes to
# a dataset's PT-v3m1 base backbone: `model = dict(backbone_out_channels=16, backbone={{ _base_.tiny_backbone }})`.
tiny_backbone = dict(
    enc_depths=(1, 1, 1, 1, 1),
    enc_channels=(8, 8, 16, 16, 32),
    enc_num_head=(1, 1, 2, 2, 4),
    enc_patch_size=(64, 64, 64, 64, 64),
    dec_depths=(1, 1, 1, 1),
    dec_channels=(16, 8, 16, 16),
    dec_num_head=(2, 1, 2, 2),
    dec_patch_size=(64, 64, 64, 64),
    drop_path=0.1,
)
