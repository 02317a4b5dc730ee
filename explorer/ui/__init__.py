"""The Streamlit pages of the explorer (the only package that imports streamlit).

Modules: ``common`` (page guard, citations, formatting), ``state`` (configuration, query
parameters), ``controls`` (sidebar built from the registries' parameter specs), ``stages`` (cached
pipeline stages), ``panels`` (the k / w fragment, metric table), and one module per page:
``explorer_page``, ``compare_page``, ``about_page``. ``sweeps`` (batch evaluation results) is
written by the evaluation work and shown when it imports.
"""
