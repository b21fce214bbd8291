from __future__ import annotations

import marshmallow as ma
from flask_smorest.fields import Upload

from shop.inputs import Input


class UploadIn(Input):
    file = Upload(required=True, metadata={"description": "A JPEG, PNG or WebP image."})


class RenditionsOut(ma.Schema):
    thumb = ma.fields.String(metadata={"description": "URL of a WebP, longest side 320 px"})
    medium = ma.fields.String(metadata={"description": "URL of a WebP, longest side 1024 px"})


class MediaOut(ma.Schema):
    id = ma.fields.Integer(required=True)
    sha256 = ma.fields.String(required=True)
    width = ma.fields.Integer(required=True, metadata={"description": "of the upright original"})
    height = ma.fields.Integer(required=True)
    content_type = ma.fields.String(required=True)
    byte_size = ma.fields.Integer(required=True)
    url = ma.fields.String(required=True, metadata={"description": "the stored original"})
    renditions = ma.fields.Nested(RenditionsOut, required=True)
