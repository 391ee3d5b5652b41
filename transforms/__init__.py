"""RadBridge's declarative transform language: YAML mappings compiled to closures.

A mapping reads an HL7 v2 message or a record (a dict, e.g. a DICOM dataset as
keyword → value) and writes a record or an outbound HL7 message, through ``set``,
``let``, ``copy``, ``foreach``, ``filter``, ``reject`` and ``route`` steps with a small,
safe condition language.  See ``transforms/README.md`` for the language reference.

Public API::

    load_mapping(path, params=None, misses=None) -> Mapping   # raises MappingError
    Mapping.run(message_or_record) -> MappingResult
    transforms.testing.run_tests(paths) -> TestReport            # mapping tests (YAML)
    transforms.lint.lint_mapping(path, hl7_version=None) -> list[ConfigProblem]
    transforms.misses.misses() -> list[Miss]                     # lookup-table misses
"""

from transforms import ops_data as _ops_data  # noqa: F401 - registers lookup, datetime, derive_uid
from transforms.errors import ExpressionError, MappingError, TransformError
from transforms.load import compile_mapping, load_mapping
from transforms.mapping import Mapping, MappingResult
from transforms.misses import MISSES, LookupMissRegistry, Miss, format_misses, misses
from transforms.tables import LookupTable

__all__ = [
    "MISSES",
    "ExpressionError",
    "LookupMissRegistry",
    "LookupTable",
    "Mapping",
    "MappingError",
    "MappingResult",
    "Miss",
    "TransformError",
    "compile_mapping",
    "format_misses",
    "load_mapping",
    "misses",
]
