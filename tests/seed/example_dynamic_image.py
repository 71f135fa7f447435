import pysandbox as modal

my_app = modal.App.lookup("my-app", create_if_missing=True)

# Dynamically defined environments: an image defined from requirements known only at runtime.
requirements = ["six"]
commands = ["echo generated > /etc/generated"]
image = modal.Image.debian_slim().pip_install(*requirements).run_commands(*commands)
sb = modal.Sandbox.create(image=image, app=my_app)
p = sb.exec("python", "-c", "import six; print(open('/etc/generated').read().strip(), six.__name__)")
print(p.stdout.read(), end="")
sb.terminate()
