"""The images task: fetch every product's image once, normalise it for the channels, store it by content."""
