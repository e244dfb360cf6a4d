"""octobatch: declarative, resumable bulk video generation through the octopusx video API."""

__version__ = "0.1.0"
