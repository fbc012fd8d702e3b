"""hala: the HALA translate-and-tune recipe for Arabic-centric language models, as a library.

Plain typed functions over files; the KFP components (``hala_components``) and the pipeline graph
(``hala_pipelines``) are thin layers over it. This package never imports kfp.
"""

__version__ = "0.1.0"
