# Runs a command on a pseudo-terminal the test owns (tsctl exec -t needs a real terminal on its
# side), speaking a tiny script given as JSON on stdin: steps of {"send": text}, {"expect": regex},
# {"resize": [rows, cols]}, and {"repeat": text, "until": regex}: send the text again every half
# second until the regex shows (a resize races with what is typed right after it, as it would
# for a person typing that fast). Prints one JSON line: {"exit": code, "output": text, "failed": step or null}.
import json, os, pty, re, select, signal, struct, sys, termios, fcntl, time

script = json.load(sys.stdin)
argv = script["argv"]
rows, cols = script.get("size", [24, 80])
timeout = script.get("timeout", 20)

pid, fd = pty.fork()
if pid == 0:
    os.execvpe(argv[0], argv, dict(os.environ, **script.get("env", {})))

def set_size(r, c):
    # TIOCSWINSZ on the master: the kernel signals SIGWINCH to the terminal's foreground group.
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", r, c, 0, 0))

set_size(rows, cols)
output = b""
failed = None

def read_until(pattern, deadline):
    global output
    regex = re.compile(pattern.encode())
    while time.time() < deadline:
        if regex.search(output):
            return True
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:
                return bool(regex.search(output))
            if not data:
                return bool(regex.search(output))
            output += data
    return bool(regex.search(output))

for i, step in enumerate(script["steps"]):
    deadline = time.time() + timeout
    if "send" in step:
        os.write(fd, step["send"].encode())
    elif "expect" in step:
        if not read_until(step["expect"], deadline):
            failed = {"step": i, "expect": step["expect"]}
            os.kill(pid, signal.SIGKILL)
            break
        # What matched is consumed, so the next expect looks at what comes after.
        m = re.search(step["expect"].encode(), output)
        output_seen = output[: m.end()]
        script.setdefault("_seen", []).append(output_seen.decode(errors="replace"))
        output = output[m.end():]
    elif "repeat" in step:
        while True:
            os.write(fd, step["repeat"].encode())
            if read_until(step["until"], min(deadline, time.time() + 0.5)):
                break
            if time.time() >= deadline:
                failed = {"step": i, "until": step["until"]}
                break
        if failed:
            os.kill(pid, signal.SIGKILL)
            break
        m = re.search(step["until"].encode(), output)
        script.setdefault("_seen", []).append(output[: m.end()].decode(errors="replace"))
        output = output[m.end():]
    elif "resize" in step:
        set_size(*step["resize"])

# Drain what is left until the child exits.
end = time.time() + timeout
while time.time() < end:
    ready, _, _ = select.select([fd], [], [], 0.1)
    if ready:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        output += data
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        pid = 0
        break
if pid:
    _, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
seen = "".join(script.get("_seen", [])) + output.decode(errors="replace")
print(json.dumps({"exit": code, "output": seen, "failed": failed}))
