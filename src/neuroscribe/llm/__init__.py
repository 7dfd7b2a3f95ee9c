"""LLM backends behind one narrow interface (see ``base``)."""
