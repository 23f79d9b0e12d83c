"""Texts that ship with the package: held-out prose on which `gptdesk bench` measures quality."""
