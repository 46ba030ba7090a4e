"""``cnnkit serve``: a local web page to try a trained run — draw a digit, upload a picture.

:mod:`cnnkit.serve.app` is the ASGI app (a static page and a JSON endpoint, with every
safety rule); :mod:`cnnkit.serve.server` runs it on uvicorn, on 127.0.0.1 by default.
Needs the ``serve`` extra (starlette, uvicorn).
"""
