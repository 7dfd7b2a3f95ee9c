"""A budget: cheap annotators on every unit, the escalated ones (an LLM) only on the units where
they can change the answer.

``config`` holds the ``[budget]`` section (imported by ``neuroscribe.config``, so it imports
nothing of neuroscribe but its errors); ``decide`` decides, from the cheap annotators' scores,
which units are escalated. The flow that runs the phases is ``flows/budget.py``.
"""
