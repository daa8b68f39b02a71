"""Networks: the ResNet body, the CriSp encoder and its training loss."""
