"""Generic network bodies shared by the models (the ResNet written here)."""
