# The narrowed PT-v3m1 student of arXiv 2505.08101 (2,777,344 parameters with a 16-class head), as the changes
# to a dataset's PT-v3m1 base backbone: use as `model = dict(backbone={{ _base_.student_backbone }})`.
student_backbone = dict(
    enc_depths=(1, 1, 1, 2, 1),
    enc_channels=(16, 16, 32, 64, 128),
    enc_num_head=(1, 1, 2, 4, 8),
    dec_depths=(1, 1, 1, 1),
    dec_channels=(64, 64, 128, 128),
    dec_num_head=(2, 2, 4, 8),
    drop_path=0.15,
)
