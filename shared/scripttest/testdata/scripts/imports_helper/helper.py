NAME = "source"
