"""Automatic preparation of a scene photograph: the ruler's scale, the print's region, mask and
orientation, proposed as the parameters an examiner would otherwise set by hand."""
