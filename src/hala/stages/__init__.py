"""One module per pipeline stage: a typed settings object in, plain paths in, a typed result out.

Each KFP component (``hala_components``) parses its settings JSON and calls its stage's ``run``;
the domain code a stage uses sits below it (``hala.prepare``, ``hala.translate``, ``hala.training``,
``hala.evaluation`` ...). Every stage opens its MLflow run the same way
(:func:`hala.stages.context.open_stage`), and each module's ``settings(preset, **identity)`` is the
one place that says which preset fields the stage reads (:mod:`hala.stages.settings`).

Stages, in pipeline order: ``preflight``, ``run`` (start/finish), ``fetch``, ``prepare``, ``quantize``,
``teacher``, ``judge``, ``bilingual``, ``sft``, ``register``, ``translation_eval``,
``translation_report``, ``corpus_translate``, ``corpus``, ``contamination``, ``merge``, ``evaluate``,
``benchmark_report``.
"""
