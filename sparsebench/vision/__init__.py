"""Vision tasks for sparse training: image data sources and timm models adapted to small images."""
