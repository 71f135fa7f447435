"""Red team, session 10 (second pass): a volume hides the runner's /dev or /proc that an image's symlink led under it.

The finding: the runners mount /proc and /dev first, at the paths the image's symlinks lead them to
(launch._check_mount_points), and a volume after them. The check refuses a later mount point inside an earlier
one, not an earlier one inside a later volume: an image whose /dev is a link to /run/dev, run with an ordinary
volume at /run, gets the volume mounted over the runner's /dev (its /proc the same through /run/proc). Under bwrap
sandbox-init's first act, remounting /dev/pts with max= (caps_bound_ptys), now fails ("/dev/pts: No such file or
directory") and init dies before it serves anything; nsjail's remount of /run/dev fails too. create() returns; the
sandbox ends at once with exit 127, and the only word of why is supervisor.log's "the sandbox's network could not be
set up". A /proc so covered is the volume's directory, which the sandbox writes and every sandbox mounting it sees:
the sandbox runs with no proc of its own. Nothing of the host is reached (volumes are nodev; init reads no /proc),
so this is a half-made sandbox and a missing clear error, not an escape. The secure outcome: create refuses it
before any work, as it refuses the image's other links into the runner's mounts.
"""

import subprocess

import pytest

import pysandbox as modal
from pysandbox.exception import InvalidError

pytestmark = pytest.mark.rootless

# Lists the directories it is given, or says it cannot: what the sandbox has at /dev and /proc.
_LISTER = r"""
#include <dirent.h>
#include <stdio.h>
int main(int argc, char **argv)
{
  for (int i = 1; i < argc; i++) {
    DIR *d = opendir(argv[i]);
    printf("%s:%s", argv[i], d ? "" : " missing");
    for (struct dirent *e; d && (e = readdir(d));)
      printf(" %s", e->d_name);
    printf("\n");
  }
  return 0;
}
"""


@pytest.fixture(scope="module")
def lister(tmp_path_factory):
    binary = tmp_path_factory.mktemp("lister") / "lister"
    subprocess.run(["cc", "-static", "-O1", "-x", "c", "-o", str(binary), "-"], input=_LISTER, text=True, check=True)
    return binary


@pytest.mark.parametrize("covered", ["dev", "proc"])
def test_a_volume_cannot_cover_the_runners_dev_or_proc(sandboxes, lister, tmp_path_factory, covered):
    tree = tmp_path_factory.mktemp("image")
    (tree / "bin").mkdir()
    (tree / "bin" / "lister").write_bytes(lister.read_bytes())
    (tree / "bin" / "lister").chmod(0o755)
    (tree / covered).symlink_to(f"/run/{covered}")  # the runner mounts its /dev or /proc at /run/...
    image = modal.Image.from_scratch().add_local_dir(tree, "/", copy=True)
    volume = modal.Volume.from_name("red10b-run", create_if_missing=True)
    try:
        sb = sandboxes("/bin/lister", "/dev/pts", "/proc/self", image=image, volumes={"/run": volume})
    except InvalidError as exc:
        assert f"/{covered}" in str(exc), exc
        return
    # The attack was made: the sandbox got the volume where the runner's mount was.
    sb.wait(raise_on_termination=False)
    seen = sb.stdout.read()
    pytest.fail(f"created; the volume at /run covers the runner's /{covered}: exit {sb.returncode}, saw {seen!r}")
