"""Story mode in the window: a tree of continuations over gptdesk.story."""

from gptdesk.ui.story.panel import StoryPanel

__all__ = ["StoryPanel"]
