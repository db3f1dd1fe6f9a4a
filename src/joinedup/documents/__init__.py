"""Document content: the encrypted, streamed, verified bytes behind IHE MHD.

The MHD registry (DocumentReference metadata, ITI-65/66/67/68) decides *what*
a document is and who may see it; this package only keeps its bytes, so the
two can change independently. Content goes through a small ``BlobStore``
interface with two implementations chosen by configuration (a local folder,
the embedded default, and S3-compatible object storage for production), and
is encrypted at rest with a per-document data key wrapped by a rotatable
master key. Every read is checked: AES-GCM tags per chunk always, the SHA-1
(FHIR ``Attachment.hash``) on whole-document reads.

Publishing is two-phase (``stage`` then ``commit`` or ``abort``) so the
registry can keep "no content without metadata, no metadata without content"
across crashes. See ``docs/reference/document-store.md`` and ADR 0501.
"""

from joinedup.documents.blobs import BlobNotFound, BlobStat, BlobStore, PendingUpload
from joinedup.documents.config import DocumentStoreConfig, S3Config
from joinedup.documents.content import (
    ContentInfo,
    ContentReader,
    ContentStore,
    RewrapReport,
    StagedBlob,
    Stager,
    SweepReport,
)
from joinedup.documents.errors import (
    ContentIntegrityError,
    ContentMismatch,
    ContentNotFound,
    ContentTooLarge,
    MasterKeyError,
    RangeNotSatisfiable,
    StagingGone,
)
from joinedup.documents.keyring import Keyring, MasterKey, create_master_key
from joinedup.documents.ranges import content_range, parse_range
from joinedup.documents.stores import STORE_BACKENDS, make_store, open_content_store

__all__ = [
    "STORE_BACKENDS",
    "BlobNotFound",
    "BlobStat",
    "BlobStore",
    "ContentInfo",
    "ContentIntegrityError",
    "ContentMismatch",
    "ContentNotFound",
    "ContentReader",
    "ContentStore",
    "ContentTooLarge",
    "DocumentStoreConfig",
    "Keyring",
    "MasterKey",
    "MasterKeyError",
    "PendingUpload",
    "RangeNotSatisfiable",
    "RewrapReport",
    "S3Config",
    "StagedBlob",
    "Stager",
    "StagingGone",
    "SweepReport",
    "content_range",
    "create_master_key",
    "make_store",
    "open_content_store",
    "parse_range",
]
