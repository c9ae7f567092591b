"""searchrel.captions: synthetic image captions, so that the text teacher can read the Pins.

``fetch`` loads image bytes (local paths, http(s), s3/gs and other fsspec filesystems) with a
reason for every failure; ``cache`` keeps captions by a hash of the image bytes and the model;
``blip`` and ``vlm`` are the two captioners; ``job`` runs them over an items table.
"""
