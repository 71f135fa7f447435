import pysandbox as modal

my_app = modal.App.lookup("my-app", create_if_missing=True)

sb = modal.Sandbox.create("python", "-m", "http.server", "8080", app=my_app, timeout=10)
for line in sb.stdout:
    print(line, end="")
