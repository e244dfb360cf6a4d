"""The gallery: the static `index.html` beside the videos, and the review server.

`write_gallery` / `render_gallery` make the page (page.py) from the cards (cards.py); the
review server (server.py) serves the same page with controls that record decisions.
"""

from octobatch.gallery.cards import Card, build_cards
from octobatch.gallery.page import GALLERY_NAME, render_gallery, write_gallery

__all__ = ["GALLERY_NAME", "Card", "build_cards", "render_gallery", "write_gallery"]
