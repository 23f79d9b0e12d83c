"""LoRA fine-tuning on the user\x27s texts (peft on the reference engine)."""
