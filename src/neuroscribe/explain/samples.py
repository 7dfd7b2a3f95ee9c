"""Several samples of one prompt: one call with ``n``, or ``n`` calls when the endpoint refuses.

Sampling several explanations and keeping the best is what makes weak explainers useful
(DESIGN.md), and one request with ``n`` samples shares the prompt's prefill. But not every
endpoint takes ``n > 1``: llama.cpp's ``llama-server`` refuses ``n`` above its slot count (400
"Field 'n' must be between 1 and 2"), and several providers accept only ``n = 1``. Before this,
every explanation of such an annotator failed and the run ended with the baseline alone.

``Sampler`` is bound to one annotator for one run (``explain_units`` makes one explainer per
annotator). The first request with ``n > 1`` is a probe, made while the other units in flight
wait: if the endpoint refuses ``n`` (``refuses_n``), the sampler remembers it and this and every
later unit get their samples from separate calls (sample ``i`` with seed ``seed + i``), so later
units never try ``n > 1`` again; if it answers, later units send ``n`` without waiting.
"""

from __future__ import annotations

import asyncio
import re

from neuroscribe.llm.base import Backend, ChatRequest
from neuroscribe.llm.recorder import BackendError

_N_FIELD = re.compile(
    r"""(['"`]n['"`]"""  # 'n', "n", `n`
    r"""|\b(?:field|parameter|param|argument|value of|option)\s+n\b"""  # Field n, parameter n
    r"""|(?<![\w.-])n\s*(?:must|should|can|is|=|>|<|:|\())"""  # n must be 1, n=1, n: ...
)


def refuses_n(error: BackendError) -> bool:
    """Whether a failed call was refused for its ``n`` (the number of samples): a client error
    (4xx) whose message names the ``n`` field. Any other failure is the call's own."""
    return error.kind == "client_error" and _N_FIELD.search(str(error)) is not None


class Sampler:
    """``n`` completions of a request from one backend, falling back to separate calls (and
    remembering it) when the endpoint refuses ``n > 1``."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.separate: bool | None = False if backend.capabilities.samples else None
        """None until the first ``n > 1`` request is answered or refused; then whether samples
        come from separate calls. False from the start for backends that always take ``n``
        (in-process models), so their first units are not held back by a probe."""
        self._probe: asyncio.Lock | None = None  # made on the loop that first uses it

    async def texts(self, request: ChatRequest) -> list[str | None]:
        """One entry per requested sample: its text, or None when its call failed (the failure is
        in the ledger). Fewer entries than ``n`` when the endpoint returned fewer samples.
        Raises ``BackendError`` when one call for all samples failed."""
        if request.n == 1 or self.separate is False:
            return list((await self.backend.achat(request)).texts)
        if self.separate is None:
            if self._probe is None:
                self._probe = asyncio.Lock()
            async with self._probe:  # one probe at a time; the others learn its outcome
                if self.separate is None:
                    try:
                        texts: list[str | None] = list((await self.backend.achat(request)).texts)
                    except BackendError as e:
                        if not refuses_n(e):
                            raise  # this unit's failure; the next request probes again
                        self.separate = True
                    else:
                        self.separate = False
                        return texts
        if not self.separate:
            return list((await self.backend.achat(request)).texts)
        return await self._one_by_one(request)

    async def _one_by_one(self, request: ChatRequest) -> list[str | None]:
        # In order, not gathered: a scripted backend's answers must not depend on threads, and
        # other units keep the endpoint's concurrency busy meanwhile.
        out: list[str | None] = []
        for i in range(request.n):
            single = request.model_copy(update={"n": 1, "seed": request.seed + i})
            try:
                response = await self.backend.achat(single)
            except BackendError:
                out.append(None)
                continue
            out.append(response.texts[0] if response.texts else "")  # parsed as "empty"
        return out
