"""Input forms: the ways stored features become training items, one module each.

An input form is an item maker (what a recipe's stage names: the features
it reads, the fold's two datasets, how they are batched), the dataset it
builds and the typed item that dataset returns (:mod:`.batches`); what the
forms share is in :mod:`.base`.

- :mod:`.flow_frames`: every flow field of a clip, colour-coded (SHCNN).
- :mod:`.clip_arrays`: one stored array per clip (STRCN-G's onset→apex flow of the crops).
- :mod:`.magnified_flows`: STRCN-G's onset→apex flows of the magnified clip, per α and frame subset.
- :mod:`.appearance`: STRCN-A's masked appearance matrices, mask per fold or global.
- :mod:`.state_frames`: Kim's five expression-state frames, batched by whole clips.
- :mod:`.maps`: every map of Choi's middle window.
- :mod:`.sequences`: whole clips encoded by the network trained so far (the recurrent stage of Kim and Choi).
- :mod:`.feature_arrays`: any store features of a clip as one array (networks registered with
  :func:`mepipe.train.api.register`).

A form only one network reads sits beside it: Nag's windows of frame pairs
in :mod:`mepipe.train.models.nag2019_windows`. A new form is one new module
here (or beside its network) and its use in a recipe.
"""
