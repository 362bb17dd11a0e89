"""The serving side: ASGI plumbing (:mod:`.asgi`), one call's run (:mod:`.dispatch`), each
protocol's server half (:mod:`.protocol`), REST transcoding, CORS, interceptors, lifespan,
the gRPC health and reflection services, the ``connectpy`` command and the Hypercorn
integration (:mod:`.hypercorn`). :mod:`connectpy.app` routes into it.
"""
