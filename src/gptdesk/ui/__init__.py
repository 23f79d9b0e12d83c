"""The Qt window (PySide6). Importing this package imports no Qt; see gptdesk.ui.app."""
