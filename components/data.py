"""Components of the data stages: fetch a model, prepare a source, assemble the corpus.

No `from __future__ import annotations` here: KFP reads the real annotation objects.
"""

from kfp import dsl

from hala_components.images import image


@dsl.component(base_image=image("data"), install_kfp_package=False)
def fetch_model_op(settings: str, model: dsl.Output[dsl.Model]) -> None:
    """Materialise a model: a hub snapshot at its revision, or a tiny model built offline.

    Args:
        settings: this stage's settings (JSON: the model id and revision, the seed).
        model: the model as a save_pretrained folder.
    """
    from hala.stages import fetch

    ref = fetch.run(fetch.FetchSettings.parse(settings), model.path)
    model.metadata.update({"model_id": ref.id, "revision": ref.revision})


@dsl.component(base_image=image("data"), install_kfp_package=False)
def prepare_source_op(settings: str, prepared: dsl.Output[dsl.Dataset]) -> None:
    """Read, validate, normalise, quarantine and shard one source.

    Args:
        settings: this stage's settings (JSON: the source, where it is read, its row limit, the shards).
        prepared: the shards, the quarantine and the counts of the source.
    """
    from hala.stages import prepare

    counts = prepare.run(prepare.PrepareSettings.parse(settings), prepared.path)
    prepared.metadata.update({"read": counts.read, "kept": counts.kept, "quarantined": counts.quarantined})
