"""Dense matching: pretrained feature maps compared by MCNCC at every translation, its
fine-tuning on references only, and calibrated scores an examiner can read."""
