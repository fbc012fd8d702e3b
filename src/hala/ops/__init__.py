"""Operations on a cluster: submit and schedule pipeline runs, promote and roll back models, rerun.

``kfp`` is imported only where a server is contacted, so the library stays importable without the
``pipeline`` extra.
"""
