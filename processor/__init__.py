"""kafka-rewind: undo precisely what a distributed system did, from the streams it already publishes."""

__version__ = "0.1.0"
