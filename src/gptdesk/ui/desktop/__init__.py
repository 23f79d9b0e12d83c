"""GPT Desk on the user's desktop: the app-menu entry and icon, Qt's platform libraries, optional features."""
