"""The synthetic tread generator: the project's embedded default dataset.

Shoe models are pattern recipes (sole outline of a shape family, regions filled with tread
elements realising the NFRC descriptors); instances vary like retailer data; queries are
crime-scene-like prints of held-out instances. See `SynthSpec` for the knobs.
"""

from shoematch.data.synth.generate import generate_query_chunk, generate_reference_chunk
from shoematch.data.synth.sheet import write_contact_sheet
from shoematch.data.synth.spec import SynthSpec

__all__ = ["SynthSpec", "generate_query_chunk", "generate_reference_chunk",
           "write_contact_sheet"]
