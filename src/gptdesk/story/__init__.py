"""The writing desk: stories as trees of continuations in the history database (no Qt here)."""

from gptdesk.story.exchange import FORMATS, export, import_story, parse
from gptdesk.story.grow import TOP_ALTERNATIVES, Grown, branch, check_branch, continue_text, edit, grow, new_story
from gptdesk.story.model import FORMAT_VERSION, Node, Story, StoryAlternative, StoryToken
from gptdesk.story.store import StoryStore

__all__ = [
    "FORMATS",
    "FORMAT_VERSION",
    "TOP_ALTERNATIVES",
    "Grown",
    "Node",
    "Story",
    "StoryAlternative",
    "StoryStore",
    "StoryToken",
    "branch",
    "check_branch",
    "continue_text",
    "edit",
    "export",
    "grow",
    "import_story",
    "new_story",
    "parse",
]
