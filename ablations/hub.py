"""Fail fast when the Hugging Face Hub is out of reach: HF's own retries take minutes before failing."""

import os

from ablations.config import ConfigError


def probe_hub(repo_id: str, key: str, hint: str, repo_type: str = "dataset") -> None:
    """Asks the Hub about repo_id with a short timeout. Skipped under HF_HUB_OFFLINE=1 or
    HF_DATASETS_OFFLINE=1, which read the local cache only."""
    if os.environ.get("HF_DATASETS_OFFLINE") == "1" or os.environ.get("HF_HUB_OFFLINE") == "1":
        return
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError
    try:
        HfApi().repo_info(repo_id, repo_type=repo_type, timeout=10)
    except RepositoryNotFoundError:
        raise ConfigError(f"{key}={repo_id}: no such {repo_type} on the Hugging Face Hub") from None
    except Exception as err:
        raise ConfigError(f"{key}={repo_id}: cannot reach the Hugging Face Hub ({type(err).__name__}); {hint}; "
                          f"HF_HUB_OFFLINE=1 reads what the local Hugging Face cache already holds") from None
