"""Voice prompts of the survey call: the clip catalog, the placeholder builder and the
library that turns recordings into the 8 kHz unsigned 8-bit PCM pyVoIP plays."""

from prompts.catalog import CLIP_NAMES, CLIPS, LANGUAGES, Clip
from prompts.library import SAMPLE_RATE, PromptError, PromptLibrary, u8_to_wav, wav_to_u8

__all__ = [
    "CLIPS",
    "CLIP_NAMES",
    "LANGUAGES",
    "SAMPLE_RATE",
    "Clip",
    "PromptError",
    "PromptLibrary",
    "u8_to_wav",
    "wav_to_u8",
]
