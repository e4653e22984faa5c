# The demo's student: the demo teacher narrowed as the paper narrows PT-v3m1 (about 7x fewer parameters).
student_backbone = dict(
    enc_depths=(1, 1, 1, 1, 1),
    enc_channels=(8, 8, 16, 32, 32),
    enc_num_head=(1, 1, 1, 2, 2),
    dec_channels=(16, 16, 16, 32),
    dec_num_head=(1, 1, 1, 2),
)
