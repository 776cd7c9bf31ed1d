"""The accuracy benchmark (``tools/accuracy_benchmark.py``): a vanilla
Segmenter trained here on the synthetic proxy or on CamVid, every token
reducer evaluated on it without fine-tuning, the defaults chosen by a
stated rule, and the fine-tuning study. One module per job:
:mod:`.data` (datasets), :mod:`.scenes` (the proxy's generator),
:mod:`.train`, :mod:`.grid` (evaluation), :mod:`.report`, :mod:`.select`
(defaults), :mod:`.finetune`, :mod:`.boundary` (where the anchors fall),
:mod:`.run` (end to end)."""
