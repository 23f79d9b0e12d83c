"""Downloading models from the Hugging Face hub."""
