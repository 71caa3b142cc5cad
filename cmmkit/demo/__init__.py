"""``cmmkit demo``: an interactive local web page (Gradio) for trained runs.

- :mod:`cmmkit.demo.spec`: what pairs and modalities declare for the page (no gradio needed);
- :mod:`cmmkit.demo.engine`: the loaded runs and the per-request seeded model calls;
- :mod:`cmmkit.demo.page`: the Gradio page built from the declarations;
- :mod:`cmmkit.demo.serve`: the ``cmmkit demo`` command and :func:`cmmkit.demo.serve.start`.

Only ``page`` (and ``serve.start``) import gradio: ``pip install 'cmmkit[demo]'``.
"""
