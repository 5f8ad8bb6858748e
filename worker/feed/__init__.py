"""The feed task: stream a shop's products once into every channel's file and publish them whole."""
