# The tiny simulator student: the sim-tiny teacher narrowed, as changes to its backbone. Use as
# `model = dict(backbone_out_channels=8, backbone={{ _base_.student_backbone }})`.
student_backbone = dict(
    enc_channels=(8, 8, 8, 16, 16),
    enc_num_head=(1, 1, 1, 2, 2),
    dec_channels=(8, 8, 8, 16),
    dec_num_head=(1, 1, 1, 2),
)
