"""The `import modal` opt-in without sandboxes: what resolves, what is refused, each in a fresh process."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def _python(code, cwd=None, extra_path=(), env_extra=None):
    path = [*map(str, extra_path), str(ROOT), os.environ.get("PYTHONPATH")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, path)), **(env_extra or {}))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          cwd=cwd or str(ROOT), timeout=60)


def test_modules_are_pysandboxs_own():
    result = _python("""
        import pysandbox
        pysandbox.install_as_modal()
        pysandbox.install_as_modal()  # idempotent
        import modal, modal.exception, modal.sandbox
        from modal.container_process import ContainerProcess
        from modal.io_streams import StreamReader, StreamWriter
        from modal.stream_type import StreamType
        from modal.config import config
        import pysandbox.container_process, pysandbox.exception
        assert modal is pysandbox and modal.exception is pysandbox.exception
        assert ContainerProcess is pysandbox.container_process.ContainerProcess
        assert StreamType is pysandbox.StreamType and StreamReader is pysandbox.StreamReader
        assert modal.sandbox.ARG_MAX_BYTES == 2 ** 16
        assert sum(type(f).__name__ == "ModalFinder" for f in __import__("sys").meta_path) == 1
        print("ok")
    """)
    assert result.stdout == "ok\n", result.stderr


def test_a_missing_module_names_itself():
    result = _python("""
        import pysandbox
        pysandbox.install_as_modal()
        try:
            import modal.nonexistent
        except ModuleNotFoundError as exc:
            print(exc.name)
            print(exc)
    """)
    name, message = result.stdout.splitlines()
    assert name == "modal.nonexistent"
    assert "'modal.nonexistent'" in message and "pysandbox" in message and "lacks it" in message


def test_refused_once_the_real_modal_is_imported(tmp_path):
    (tmp_path / "modal").mkdir()
    (tmp_path / "modal" / "__init__.py").write_text("REAL = True\n")
    result = _python("""
        import modal
        import pysandbox
        try:
            pysandbox.install_as_modal()
        except pysandbox.exception.InvalidError as exc:
            print(exc)
        import modal as again
        assert again.REAL
    """, extra_path=[tmp_path])
    assert result.returncode == 0, result.stderr
    assert "the real `modal` is already imported" in result.stdout and str(tmp_path) in result.stdout


def test_without_the_opt_in_modal_is_untouched(tmp_path):
    (tmp_path / "modal").mkdir()
    (tmp_path / "modal" / "__init__.py").write_text("REAL = True\n")
    result = _python("import pysandbox, modal; print(modal.REAL)", extra_path=[tmp_path])
    assert result.stdout == "True\n", result.stderr


def test_modal_run_passes_the_exit_status_and_refuses_a_missing_command(tmp_path):
    run = [sys.executable, "-m", "pysandbox", "modal-run", "--"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    code = "import modal, sys; sys.exit(7 if modal.__name__ == 'pysandbox' else 1)"
    assert subprocess.run(run + [sys.executable, "-c", code], env=env, timeout=60).returncode == 7
    missing = subprocess.run(run + [str(tmp_path / "no-such-program")], env=env, capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 2 and "cannot run" in missing.stderr
    nothing = subprocess.run(run, env=env, capture_output=True, text=True, timeout=60)
    assert nothing.returncode == 2 and "no command given" in nothing.stderr


def test_modal_run_imports_pysandbox_only_with_modal():
    """A Python process of the command that never imports modal does not pay for importing pysandbox."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    code = "import sys; print('pysandbox' in sys.modules); import modal.exception; print(modal.__name__)"
    result = subprocess.run([sys.executable, "-m", "pysandbox", "modal-run", "--", sys.executable, "-c", code],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout == "False\npysandbox\n", result.stderr


def test_modal_run_names_a_python_without_pysandbox(tmp_path):
    """The child Python cannot import pysandbox (here: a broken one first on its path): said at `import modal`."""
    (tmp_path / "pysandbox").mkdir()
    (tmp_path / "pysandbox" / "__init__.py").write_text("raise ImportError('not installed here')\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT / "pysandbox" / "_bootstrap"), str(tmp_path)]),
               PYSANDBOX_AS_MODAL="1")
    assert subprocess.run([sys.executable, "-c", "pass"], env=env, cwd=str(tmp_path), timeout=60).returncode == 0
    result = subprocess.run([sys.executable, "-c", "import modal"], env=env, capture_output=True, text=True,
                            cwd=str(tmp_path), timeout=60)
    assert "cannot import pysandbox (not installed here)" in result.stderr
    assert "install pysandbox in that Python's environment" in result.stderr


def test_modal_run_keeps_a_shadowed_sitecustomize(tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import builtins; builtins.SHADOWED = True\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), str(tmp_path)])))
    code = "import builtins, modal; print(builtins.SHADOWED, modal.__name__)"
    result = subprocess.run([sys.executable, "-m", "pysandbox", "modal-run", "--", sys.executable, "-c", code],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.stdout == "True pysandbox\n", result.stderr


def test_as_modal_runs_a_script_as_python_would(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "helper.py").write_text("VALUE = 'beside the script'\n")
    (tmp_path / "pkg" / "app.py").write_text(textwrap.dedent("""
        import os, sys
        import helper  # the script's directory is first on sys.path
        import modal
        assert __name__ == "__main__" and sys.argv == [sys.argv[0], "a", "--flag"]
        assert os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__))
        print(helper.VALUE, modal.__name__)
        raise SystemExit(4)
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    result = subprocess.run([sys.executable, "-m", "pysandbox.as_modal", "pkg/app.py", "a", "--flag"], env=env,
                            cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr) == (4, "beside the script pysandbox\n", "")


def test_as_modal_usage():
    result = subprocess.run([sys.executable, "-m", "pysandbox.as_modal"], capture_output=True, text=True,
                            cwd=str(ROOT), timeout=60)
    assert result.returncode == 2 and "usage: python -m pysandbox.as_modal" in result.stderr


def test_as_modal_a_missing_script_or_module_is_one_line_as_python_says_it(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    for args, code, said in ((["absent.py"], 2, f"can't open file '{tmp_path / 'absent.py'}'"),
                             (["-m", "absent_module"], 1, "No module named absent_module"),
                             (["-m", "absent_package.module"], 1, "No module named absent_package.module")):
        result = subprocess.run([sys.executable, "-m", "pysandbox.as_modal", *args], env=env, cwd=str(tmp_path),
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == code and said in result.stderr, result.stderr
        assert "Traceback" not in result.stderr and len(result.stderr.splitlines()) == 1


def test_pytest_plugin_is_an_entry_point():
    text = (ROOT / "setup.cfg").read_text()
    assert "pytest11 =\n    pysandbox = pysandbox.pytest_plugin" in text
    assert "    _bootstrap/sitecustomize.py" in text.split("[options.package_data]")[1].split("[")[0]


def test_config_reads_modal_settings(tmp_path):
    (tmp_path / "modal.toml").write_text('[work]\nactive = true\nenvironment = "dev"\n[other]\nloglevel = "info"\n')
    result = _python("""
        import os
        os.environ["MODAL_CONFIG_PATH"] = os.environ["CFG"]
        from pysandbox.config import config, config_profiles, config_set_active_profile
        import pysandbox.config as module
        assert module._profile == "work" and config_profiles() == ["work", "other"]
        assert config.get("environment") == "dev" and config["loglevel"] == "WARNING"
        assert config.get("loglevel", profile="other") == "INFO"
        config.override_locally("environment", "prod")
        assert config["environment"] == "prod" and config.get("environment", use_env=False) == "dev"
        config_set_active_profile("other")
        assert module._profile == "other" and config.get("loglevel", use_env=False) == "INFO"
        try:
            config_set_active_profile("nope")
        except module.NotFoundError as exc:
            print("refused", exc)
        try:
            config["no_such_setting"]
        except KeyError:
            print("KeyError")
        assert open(os.environ["CFG"]).read().startswith("[work]\\nactive = true")  # never rewritten
    """, cwd=str(tmp_path), env_extra={"CFG": str(tmp_path / "modal.toml")}) if sys.version_info >= (3, 11) else None
    if result is None:  # no TOML reader in 3.10's standard library: the file is not read
        result = _python("from pysandbox.config import config; print(config.get('environment'))")
        assert result.stdout == "None\n", result.stderr
        return
    assert result.returncode == 0, result.stderr
    assert "refused No profile named 'nope'" in result.stdout and "KeyError" in result.stdout
