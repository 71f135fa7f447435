"""Modal's `modal.config`, as far as a local client can honour it.

Programs written for Modal read settings through `modal.config.config` (`config.get("environment")`,
`config["loglevel"]`) and override them for the process (`config.override_locally`). Here the same
calls resolve as Modal resolves them: the environment variable `MODAL_<KEY>`, then the active profile
of `~/.modal.toml` (or `$MODAL_CONFIG_PATH`), then Modal's default. None of these settings changes what
pysandbox does: its own settings are `PYSANDBOX_*` variables (pysandbox/settings.py).

Unlike Modal, `config_set_active_profile` changes the active profile for this process only and never
rewrites the file: that file belongs to the real Modal client.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Dict, List, Optional, Tuple

from .exception import InvalidError, NotFoundError


def _boolean(value: str) -> bool:
    return str(value).lower() not in ("", "0", "false")


def _one_of(*options: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value.lower() not in options:
            raise ValueError(f"must be one of {list(options)}")
        return value.lower()
    return check


def _text(value: str) -> str:
    return value


# Modal 1.6.4's public settings: name -> (default, how a string value is read).
_SETTINGS: Dict[str, Tuple[Any, Callable[[str], Any]]] = {
    "server_url": ("https://api.modal.com,https://api.modal2.com", _text),
    "token_id": (None, _text),
    "token_secret": (None, _text),
    "oauth_refresh_token": (None, _text),
    "oauth_client_id": (None, _text),
    "oauth_client_secret": (None, _text),
    "oauth_jwt_key": (None, _text),
    "loglevel": ("WARNING", str.upper),
    "log_format": ("STRING", str.upper),
    "log_pattern": (None, _text),
    "sandbox_v2": (True, _boolean),
    "payload_format": ("pickle", _one_of("pickle", "cbor")),
    "async_warnings": (True, _boolean),
    "environment": (None, _text),
    "dev_suffix": ("", _text),
    "traceback": (False, _boolean),
    "build_validation": ("error", _one_of("error", "warn", "ignore")),
    "image_builder_version": (None, _text),
    "force_build": (False, _boolean),
    "ignore_cache": (False, _boolean),
    "disable_api_proxy": (False, _boolean),
    "default_cloud": (None, lambda value: value or None),
    "max_throttle_wait": (None, lambda value: int(value) if value else None),
    "logs_timeout": (10, float),
    "serve_timeout": (None, float),
    "sandbox_channel_idle_timeout": (30, float),
    "volume_block_read_timeout": (60, float),
}

user_config_path: str = os.environ.get("MODAL_CONFIG_PATH") or os.path.expanduser("~/.modal.toml")


def _read_user_config() -> Dict[str, Dict[str, Any]]:
    """The profiles of Modal's config file; empty when there is none or it cannot be read here
    (a TOML reader is in the standard library from Python 3.11 on)."""
    try:
        import tomllib
    except ImportError:
        return {}
    try:
        with open(user_config_path, "rb") as file:
            data = tomllib.load(file)
    except (OSError, ValueError):
        return {}
    return {name: values for name, values in data.items() if isinstance(values, dict)}


_user_config = _read_user_config()


def _active_profile() -> str:
    return next((name for name, values in _user_config.items() if values.get("active") is True), "default")


_profile: str = os.environ.get("MODAL_PROFILE") or _active_profile()


class Config:
    """Modal's configuration singleton (`modal.config.config`)."""

    def get(self, key: str, *, profile: Optional[str] = None, use_env: bool = True) -> Any:
        """The value of setting `key`: from `MODAL_<KEY>` (when `use_env`), the profile, or the default.
        An unknown key raises KeyError, as on Modal."""
        default, read = _SETTINGS[key]
        variable = "MODAL_" + key.upper()
        if use_env and variable in os.environ:
            raw = os.environ[variable]
        else:
            values = _user_config.get(_profile if profile is None else profile, {})
            if key not in values:
                return default
            raw = values[key]
        try:
            return read(raw)
        except (TypeError, ValueError) as exc:
            raise InvalidError(f"Invalid value for {key} config ({raw!r}): {exc}") from None

    def override_locally(self, key: str, value: str) -> None:
        """Set `key` for this process (and the processes it starts), through its environment variable."""
        os.environ["MODAL_" + key.upper()] = value

    def __getitem__(self, key: str) -> Any:
        return self.get(key)

    def __repr__(self) -> str:
        return repr(self.to_dict())

    def to_dict(self, *, include_internal: bool = False) -> Dict[str, Any]:
        """Every setting and its value (a local client has no internal settings to include)."""
        return {key: self.get(key) for key in sorted(_SETTINGS)}


config = Config()


def config_profiles() -> List[str]:
    """The profile names in Modal's config file."""
    return list(_user_config)


def config_set_active_profile(profile: str) -> None:
    """Make `profile` (a profile of the config file) the active one, for this process."""
    global _profile
    if profile not in _user_config:
        raise NotFoundError(f"No profile named '{profile}' found in {user_config_path}")
    _profile = profile
