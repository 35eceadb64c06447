"""Augmentation policies (RandAugment, TrivialAugmentWide, AutoAugment, AugMix) in timm's and
torchvision's conventions, fused: a policy only draws, per sample, which ops it applies and
their magnitudes (``draw``); ``vocab.assemble`` turns them into the record's policy geometry
(composed into the sampling map, with fill outside the crop canvas) and program steps.
"""
