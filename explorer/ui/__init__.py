"""The Streamlit pages of the explorer (the only package that imports streamlit).

One module per page: ``explorer_page`` (one model, one image, one attack), ``compare_page``
(the sidebar's model beside a second one, with a verdict), ``sweeps`` (batch evaluation results).
What they share:

- ``state``: the view configuration (a frozen ``Config``), no streamlit;
- ``link``: the configuration's shared link, ``from_query`` / ``to_query``, no streamlit;
- ``keys``: every session-state key; ``plain``: user text shown as plain text;
- ``controls``: the sidebar, built from the registries' parameter specs; ``picker``: the image
  picker and gallery; ``availability``: which datasets and models can be used here (the
  pickers offer only those); ``kcontrol``: the k slider (log-scale on large images);
- ``stages``: the cached pipeline stages (frozen dataclasses of numpy arrays);
  ``background``: the attack board, the progress callback and the score prefetch;
- ``flow``: input choice, model loading and attack runs with in-place messages;
- ``panels``: the k / w fragment and the metric table; ``explain``, ``export``, ``common``.
"""
