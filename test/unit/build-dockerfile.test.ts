// The Dockerfile front end without planning: Docker's word splitting and expansion
// (common/build/shell-lexer.ts), the line structure (continuations, comments, heredocs,
// directives) and every instruction's forms, flags and errors with file:line:column.

import test from 'ava';
import { BuildError } from '../../common/build/builder.js';
import { parseDockerfile } from '../../common/build/dockerfile-parse.js';
import type { StageInstruction } from '../../common/build/dockerfile-instructions.js';
import { readDockerfileLines } from '../../common/build/dockerfile-lines.js';
import { MAX_DOCKERFILE_BYTES, MAX_EXPANSION_CHARS, MAX_INSTRUCTIONS, MAX_STAGES } from '../../common/build/dockerfile-limits.js';
import { parseGoDuration } from '../../common/build/durations.js';
import { expandHeredoc, expandWord, splitRawWords, WordError } from '../../common/build/shell-lexer.js';

const vars: Record<string, string> = { A: 'a', EMPTY: '', SPACED: 'x y', PATH: '/usr/bin:/bin', V: 'v1.2.3', FILE: 'archive.tar.gz' };
const lookup = (name: string): string | undefined => (Object.hasOwn(vars, name) ? vars[name] : undefined);
const expand = (word: string, escape = '\\'): string => expandWord(word, lookup, escape);

const expansions: [string, string][] = [
  ['$A', 'a'],
  ['${A}', 'a'],
  ['pre${A}post', 'preapost'],
  ['$A$A', 'aa'],
  ['$UNSET', ''],
  ['${UNSET}', ''],
  ['${UNSET:-dflt}', 'dflt'],
  ['${EMPTY:-dflt}', 'dflt'],
  ['${EMPTY-dflt}', ''],
  ['${UNSET-dflt}', 'dflt'],
  ['${A:-dflt}', 'a'],
  ['${A:+alt}', 'alt'],
  ['${EMPTY:+alt}', ''],
  ['${EMPTY+alt}', 'alt'],
  ['${UNSET+alt}', ''],
  ['${UNSET:-$A}', 'a'],
  ['${UNSET:-${A:+nested}}', 'nested'],
  ['${UNSET:-a b}', 'a b'],
  ['${A:?must be set}', 'a'],
  ['${V#v}', '1.2.3'],
  ['${V#*.}', '2.3'],
  ['${V##*.}', '3'],
  ['${FILE%.*}', 'archive.tar'],
  ['${FILE%%.*}', 'archive'],
  ['${PATH/bin/sbin}', '/usr/sbin:/bin'],
  ['${PATH//bin/sbin}', '/usr/sbin:/sbin'],
  ['\\$A', '$A'],
  ['\\${A}', '${A}'],
  ["'$A'", '$A'],
  ['"$A"', 'a'],
  ['"\\$A"', '$A'],
  ['"a\\"b"', 'a"b'],
  ['"a\\nb"', 'a\\nb'],
  ['a\\ b', 'a b'],
  ['"$SPACED"', 'x y'],
  ['$SPACED', 'x y'],
  ['$', '$'],
  ['$ x', '$ x'],
  ['a$-b', 'a$-b'],
  ['"it\'s"', "it's"],
  ['\'say "hi"\'', 'say "hi"'],
  ['trailing\\', 'trailing\\'],
];
for (const [word, expected] of expansions) {
  test(`expands ${word}`, (t) => {
    t.is(expand(word), expected);
  });
}

test('the backtick escape replaces the backslash', (t) => {
  t.is(expand('`$A', '`'), '$A');
  t.is(expand('C:\\dir', '`'), 'C:\\dir');
});

test('malformed expansions are errors that say what is wrong', (t) => {
  t.throws(() => expand('${'), { instanceOf: WordError, message: /bad substitution/ });
  t.throws(() => expand('${A'), { instanceOf: WordError, message: /missing '}'/ });
  t.throws(() => expand('${A:-x'), { instanceOf: WordError, message: /missing '}'/ });
  t.throws(() => expand('${A:x}'), { instanceOf: WordError, message: /unsupported modifier \(:x\)/ });
  t.throws(() => expand("'open"), { instanceOf: WordError, message: /single-quote/ });
  t.throws(() => expand('"open'), { instanceOf: WordError, message: /double-quote/ });
  t.throws(() => expand('${UNSET:?needs a value}'), { instanceOf: WordError, message: 'UNSET: needs a value' });
  t.throws(() => expand('${EMPTY:?}'), { instanceOf: WordError, message: 'EMPTY: is not allowed to be empty' });
  t.throws(() => expand('${UNSET?}'), { instanceOf: WordError, message: 'UNSET: is not defined' });
  t.is(expand('${EMPTY?}'), '');
});

test('an expansion longer than the limit is refused, naming the limit', (t) => {
  const big = 'x'.repeat(MAX_EXPANSION_CHARS / 2 + 1);
  t.throws(() => expandWord('$B$B', (name) => (name === 'B' ? big : undefined), '\\'), { message: /MAX_EXPANSION_CHARS/ });
});

test('heredoc expansion keeps quotes and only escapes $ and the escape character', (t) => {
  t.is(expandHeredoc('echo "$A" \'$A\' \\$A \\\\ \\n\n', lookup, '\\'), 'echo "a" \'a\' $A \\ \\n\n');
});

test('raw words split on unquoted blanks and keep quotes and escapes', (t) => {
  t.deepEqual(splitRawWords('a "b c" \'d e\' f\\ g  h', '\\'), ['a', '"b c"', "'d e'", 'f\\ g', 'h']);
  t.deepEqual(splitRawWords('  ', '\\'), []);
});

test('Go durations', (t) => {
  t.is(parseGoDuration('30s'), 30e9);
  t.is(parseGoDuration('1m30s'), 90e9);
  t.is(parseGoDuration('1.5h'), 5400e9);
  t.is(parseGoDuration('500ms'), 5e8);
  t.is(parseGoDuration('10us'), 1e4);
  t.is(parseGoDuration('0'), 0);
  t.is(parseGoDuration('30'), undefined);
  t.is(parseGoDuration('-1s'), undefined);
  t.is(parseGoDuration('1d'), undefined);
  t.is(parseGoDuration(''), undefined);
});

// ---- lines ----

test('continuations join, comment and blank lines inside them are dropped, the next line keeps its leading blanks', (t) => {
  const lines = readDockerfileLines('FROM a\nRUN echo one \\\n# a comment\n\n   && echo two\\  \n  three\n', 'Dockerfile');
  const run = lines.instructions[1];
  t.is(run?.keyword, 'RUN');
  t.is(run?.args, 'echo one    && echo two  three');
  t.deepEqual(run?.location, { file: 'Dockerfile', line: 2, column: 1 });
});

test('keywords are case-insensitive and located at their column; CRLF and a BOM are read', (t) => {
  const lines = readDockerfileLines('\uFEFFFROM a\r\n\r\n   run  echo hi\r\n', 'df');
  t.is(lines.instructions[1]?.keyword, 'RUN');
  t.is(lines.instructions[1]?.text, 'run echo hi');
  t.deepEqual(lines.instructions[1]?.location, { file: 'df', line: 3, column: 4 });
});

test('the escape directive changes the continuation character; syntax is read', (t) => {
  const lines = readDockerfileLines('# syntax=docker/dockerfile:1\n# escape=`\nFROM a\nRUN dir c:\\ `\n  && echo x\n', 'Dockerfile');
  t.is(lines.escape, '`');
  t.is(lines.syntax, 'docker/dockerfile:1');
  t.is(lines.instructions[1]?.args, 'dir c:\\   && echo x');
});

test('an invalid escape directive is an error', (t) => {
  t.throws(() => readDockerfileLines('# escape=x\nFROM a\n', 'Dockerfile'), { message: /Dockerfile:1:1: invalid escape token 'x'/ });
});

test('heredocs: bodies, <<- removes leading tabs, quoted delimiters disable expansion, several per instruction', (t) => {
  const text = [
    'FROM a',
    'RUN <<EOF',
    'echo $HOME',
    'EOF',
    'RUN cat <<-"END" >/f',
    '\t\tindented',
    '\tEND',
    "COPY <<one <<'two' /d/",
    '1',
    'one',
    '2',
    'two',
    'RUN echo after',
  ].join('\n');
  const lines = readDockerfileLines(text, 'Dockerfile');
  t.is(lines.instructions.length, 5);
  t.deepEqual(lines.instructions[1]?.heredocs, [{ name: 'EOF', content: 'echo $HOME\n', chomp: false, expand: true }]);
  t.deepEqual(lines.instructions[2]?.heredocs, [{ name: 'END', content: 'indented\n', chomp: true, expand: false }]);
  t.deepEqual(
    lines.instructions[3]?.heredocs.map((h) => [h.name, h.content, h.expand]),
    [
      ['one', '1\n', true],
      ['two', '2\n', false],
    ],
  );
  t.deepEqual(lines.instructions[4]?.location, { file: 'Dockerfile', line: 13, column: 1 });
});

test('a heredoc body that looks like instructions stays a body', (t) => {
  const lines = readDockerfileLines('FROM a\nRUN <<EOF\nFROM b\nRUN x\nEOF\n', 'Dockerfile');
  t.is(lines.instructions.length, 2);
  t.is(lines.instructions[1]?.heredocs[0]?.content, 'FROM b\nRUN x\n');
});

test('an unterminated heredoc names its delimiter and the instruction', (t) => {
  t.throws(() => readDockerfileLines('FROM a\nRUN <<EOF\necho\n', 'Dockerfile'), { message: /Dockerfile:2:1: heredoc <<EOF is not terminated/ });
});

test('the file size limit is enforced and named', (t) => {
  t.throws(() => readDockerfileLines(`FROM a\n#${'x'.repeat(MAX_DOCKERFILE_BYTES)}`, 'Dockerfile'), {
    instanceOf: BuildError,
    message: /MAX_DOCKERFILE_BYTES/,
  });
});

test('the instruction count limit is enforced and named', (t) => {
  const text = `FROM a\n${'ENV A=1\n'.repeat(MAX_INSTRUCTIONS)}`;
  t.throws(() => readDockerfileLines(text, 'Dockerfile'), { message: new RegExp(`Dockerfile:${MAX_INSTRUCTIONS + 1}:1: .*MAX_INSTRUCTIONS`) });
});

// ---- instructions ----

function only(text: string): StageInstruction {
  const parsed = parseDockerfile(`FROM base\n${text}\n`, 'Dockerfile');
  const instruction = parsed.stages[0]?.instructions[0];
  if (instruction === undefined) throw new Error('no instruction');
  return instruction;
}

function errorOf(text: string): string {
  const error = (() => {
    try {
      parseDockerfile(text, 'Dockerfile');
    } catch (caught) {
      return caught;
    }
    return undefined;
  })();
  if (!(error instanceof BuildError)) throw new Error(`expected a BuildError for ${JSON.stringify(text)}`);
  return error.message;
}

test('FROM: image, AS name (lower-cased), --platform, stages and global ARGs', (t) => {
  const parsed = parseDockerfile('ARG V=1\nFROM --platform=$BUILDPLATFORM golang:${V} AS Build\nFROM scratch\n', 'Dockerfile');
  t.is(parsed.globalArgs.length, 1);
  t.like(parsed.stages[0]?.from, { image: 'golang:${V}', stageName: 'build', platform: '$BUILDPLATFORM' });
  t.like(parsed.stages[1]?.from, { image: 'scratch' });
  t.is(parsed.stages[1]?.from.stageName, undefined);
});

test('FROM errors', (t) => {
  t.is(errorOf('FROM\n'), 'Dockerfile:1:1: FROM requires either one or three arguments: FROM image [AS name]');
  t.is(errorOf('FROM a b c\n'), 'Dockerfile:1:1: FROM: expected "AS" before the stage name, found "b"');
  t.regex(errorOf('FROM a AS 1x\n'), /^Dockerfile:1:1: invalid stage name "1x"/);
  t.is(errorOf('FROM --plat=x a\n'), 'Dockerfile:1:1: FROM: unknown flag: --plat');
  t.is(errorOf('# only a comment\n'), 'Dockerfile:1:1: the Dockerfile has no FROM instruction');
  t.is(errorOf('RUN x\nFROM a\n'), 'Dockerfile:1:1: RUN before the first FROM: only ARG may come before it');
});

test('the stage count limit is enforced and named', (t) => {
  t.regex(errorOf('FROM a\n'.repeat(MAX_STAGES + 1)), new RegExp(`^Dockerfile:${MAX_STAGES + 1}:1: .*MAX_STAGES`));
});

test('an unknown instruction names file, line and column', (t) => {
  t.is(errorOf('FROM a\n\n  BOGUS x y\n'), 'Dockerfile:3:3: unknown instruction: BOGUS');
});

test('RUN shell and exec form; invalid JSON is shell form as in Docker', (t) => {
  t.like(only('RUN echo "a b"'), { kind: 'run', command: { kind: 'shell', command: 'echo "a b"' } });
  t.like(only('RUN ["echo", "a b"]'), { kind: 'run', command: { kind: 'exec', argv: ['echo', 'a b'] } });
  t.like(only("RUN ['echo']"), { kind: 'run', command: { kind: 'shell', command: "['echo']" } });
  t.like(only('RUN [1, 2]'), { kind: 'run', command: { kind: 'shell' } });
});

test('RUN --mount, --network, --security are refused by name', (t) => {
  t.regex(errorOf('FROM a\nRUN --mount=type=cache,target=/x make\n'), /^Dockerfile:2:1: RUN --mount is not supported: /);
  t.regex(errorOf('FROM a\nRUN --network=host make\n'), /^Dockerfile:2:1: RUN --network is not supported: /);
  t.regex(errorOf('FROM a\nRUN --security=insecure make\n'), /^Dockerfile:2:1: RUN --security is not supported: /);
  t.is(errorOf('FROM a\nRUN\n'), 'Dockerfile:2:1: RUN requires at least one argument');
});

test('COPY and ADD: flags, JSON form, heredoc sources', (t) => {
  t.like(only('COPY --from=build --chown=1:2 --chmod=755 --link a b /dst/'), {
    kind: 'copy',
    add: false,
    from: 'build',
    chown: '1:2',
    chmod: '755',
    link: true,
    sources: [
      { kind: 'path', word: 'a' },
      { kind: 'path', word: 'b' },
    ],
    dest: '/dst/',
  });
  t.like(only('COPY ["a b", "/c d/"]'), { sources: [{ kind: 'path', word: 'a b' }], dest: '/c d/' });
  t.like(only('ADD --checksum=sha256:abc https://x/y /y'), { add: true, checksum: 'sha256:abc' });
  const heredoc = only('COPY <<EOF /etc/x\nhello\nEOF');
  t.like(heredoc, { sources: [{ kind: 'heredoc', heredoc: { name: 'EOF', content: 'hello\n' } }], dest: '/etc/x' });
});

test('COPY and ADD errors', (t) => {
  t.is(errorOf('FROM a\nCOPY a\n'), 'Dockerfile:2:1: COPY requires at least two arguments: source(s) and destination');
  t.regex(errorOf('FROM a\nCOPY --parents a /b\n'), /^Dockerfile:2:1: COPY --parents is not supported/);
  t.regex(errorOf('FROM a\nCOPY --exclude=x a /b\n'), /^Dockerfile:2:1: COPY --exclude is not supported/);
  t.regex(errorOf('FROM a\nADD --from=x a /b\n'), /^Dockerfile:2:1: ADD --from is not supported/);
  t.regex(errorOf('FROM a\nADD --keep-git-dir a /b\n'), /ADD --keep-git-dir is not supported/);
  t.is(errorOf('FROM a\nCOPY --from a /b\n'), 'Dockerfile:2:1: COPY: missing a value on flag --from');
  t.is(errorOf('FROM a\nCOPY --from=x --from=y a /b\n'), 'Dockerfile:2:1: COPY: duplicate flag specified: --from');
  t.is(errorOf('FROM a\nCOPY --link=maybe a /b\n'), 'Dockerfile:2:1: COPY: expecting boolean value for flag --link, not "maybe"');
});

test('ENV and LABEL: K=V pairs with quotes and escapes, and the legacy K V form', (t) => {
  t.like(only('ENV A=1 B="x y" C=z\\ w'), {
    kind: 'env',
    pairs: [
      { key: 'A', value: '1' },
      { key: 'B', value: '"x y"' },
      { key: 'C', value: 'z\\ w' },
    ],
  });
  t.like(only('ENV D e  f'), { pairs: [{ key: 'D', value: 'e  f' }] });
  t.like(only('LABEL "com.x"="y z" k=v'), { kind: 'label', pairs: [{ key: '"com.x"', value: '"y z"' }, { key: 'k' }] });
  t.is(errorOf('FROM a\nENV A\n'), 'Dockerfile:2:1: ENV must have two arguments: ENV A value (or A=value)');
  t.is(errorOf('FROM a\nENV A=1 B\n'), 'Dockerfile:2:1: ENV: can\'t find = in "B": it must be of the form name=value');
  t.is(errorOf('FROM a\nLABEL =x\n'), 'Dockerfile:2:1: LABEL: empty name in "=x"');
});

test('ARG: names, defaults, several per line', (t) => {
  t.like(only('ARG A B=2 C="x y"'), { kind: 'arg', declarations: [{ name: 'A' }, { name: 'B', defaultValue: '2' }, { name: 'C', defaultValue: '"x y"' }] });
  t.is(errorOf('FROM a\nARG\n'), 'Dockerfile:2:1: ARG requires at least one argument');
  t.is(errorOf('FROM a\nARG 1A=x\n'), 'Dockerfile:2:1: ARG: invalid name "1A"');
});

test('CMD and ENTRYPOINT: exec, shell and the empty exec form for CMD', (t) => {
  t.like(only('CMD ["a", "b"]'), { kind: 'cmd', command: { kind: 'exec', argv: ['a', 'b'] } });
  t.like(only('CMD []'), { kind: 'cmd', command: { kind: 'exec', argv: [] } });
  t.like(only('ENTRYPOINT exec nginx -g "daemon off;"'), { kind: 'entrypoint', command: { kind: 'shell', command: 'exec nginx -g "daemon off;"' } });
  t.is(errorOf('FROM a\nENTRYPOINT []\n'), 'Dockerfile:2:1: ENTRYPOINT requires at least one argument');
  t.is(errorOf('FROM a\nCMD\n'), 'Dockerfile:2:1: CMD requires at least one argument');
});

test('HEALTHCHECK: NONE, CMD exec and shell, durations in ns, retries', (t) => {
  t.like(only('HEALTHCHECK NONE'), { healthcheck: { test: ['NONE'], intervalNs: 0, retries: 0 } });
  t.like(only('HEALTHCHECK --interval=5s --timeout=3s --start-period=1m --start-interval=500ms --retries=4 CMD ["curl", "-f", "http://x"]'), {
    healthcheck: { test: ['CMD', 'curl', '-f', 'http://x'], intervalNs: 5e9, timeoutNs: 3e9, startPeriodNs: 60e9, startIntervalNs: 5e8, retries: 4 },
  });
  t.like(only('HEALTHCHECK cmd curl -f http://x || exit 1'), { healthcheck: { test: ['CMD-SHELL', 'curl -f http://x || exit 1'] } });
  t.is(errorOf('FROM a\nHEALTHCHECK --interval=5 CMD x\n'), 'Dockerfile:2:1: HEALTHCHECK --interval: "5" is not a duration (e.g. 30s, 1m30s, 500ms)');
  t.is(errorOf('FROM a\nHEALTHCHECK --timeout=10us CMD x\n'), 'Dockerfile:2:1: HEALTHCHECK --timeout cannot be less than 1ms');
  t.is(errorOf('FROM a\nHEALTHCHECK --retries=-1 CMD x\n'), 'Dockerfile:2:1: HEALTHCHECK --retries: "-1" is not a whole number of at most 9 digits');
  t.is(errorOf('FROM a\nHEALTHCHECK --interval=1s NONE\n'), 'Dockerfile:2:1: HEALTHCHECK NONE takes no other arguments');
  t.is(errorOf('FROM a\nHEALTHCHECK RUN x\n'), 'Dockerfile:2:1: unknown type "RUN" in HEALTHCHECK (try CMD or NONE)');
});

test('VOLUME, SHELL, USER, STOPSIGNAL, WORKDIR, EXPOSE, MAINTAINER forms', (t) => {
  t.like(only('VOLUME ["/a", "/b c"]'), { kind: 'volume', paths: ['/a', '/b c'] });
  t.like(only('VOLUME /a /b'), { kind: 'volume', paths: ['/a', '/b'] });
  t.like(only('SHELL ["/bin/bash", "-eo", "pipefail", "-c"]'), { kind: 'shell', argv: ['/bin/bash', '-eo', 'pipefail', '-c'] });
  t.like(only('USER app:app'), { kind: 'user', user: 'app:app' });
  t.like(only('STOPSIGNAL SIGQUIT'), { kind: 'stopsignal', signal: 'SIGQUIT' });
  t.like(only('WORKDIR /a b'), { kind: 'workdir', path: '/a b' });
  t.like(only('EXPOSE 80/tcp 53/udp'), { kind: 'expose', ports: ['80/tcp', '53/udp'] });
  t.like(only('MAINTAINER Jane <j@x>'), { kind: 'maintainer', name: 'Jane <j@x>' });
  t.is(errorOf('FROM a\nSHELL /bin/bash -c\n'), 'Dockerfile:2:1: SHELL requires the arguments to be in JSON form, e.g. SHELL ["/bin/bash", "-c"]');
  t.is(errorOf('FROM a\nUSER a b\n'), 'Dockerfile:2:1: USER requires exactly one argument');
  t.is(errorOf('FROM a\nVOLUME [""]\n'), 'Dockerfile:2:1: VOLUME specified can not be an empty string');
  t.is(errorOf('FROM a\nWORKDIR\n'), 'Dockerfile:2:1: WORKDIR requires an argument');
  t.is(errorOf('FROM a\nEXPOSE\n'), 'Dockerfile:2:1: EXPOSE requires at least one argument');
  // Heredocs are for RUN, COPY and ADD only: elsewhere "<<EOF" is a word like any other.
  t.is(errorOf('FROM a\nLABEL a=b <<EOF\nx\nEOF\n'), 'Dockerfile:2:1: LABEL: can\'t find = in "<<EOF": it must be of the form name=value');
});

test('ONBUILD: recorded with its trigger checked; chained ONBUILD, FROM and MAINTAINER triggers refused', (t) => {
  t.like(only('ONBUILD RUN make'), { kind: 'onbuild', trigger: 'RUN make' });
  t.is(errorOf('FROM a\nONBUILD ONBUILD RUN x\n'), 'Dockerfile:2:1: chaining ONBUILD via `ONBUILD ONBUILD` is not allowed');
  t.is(errorOf('FROM a\nONBUILD FROM b\n'), 'Dockerfile:2:1: FROM is not allowed as an ONBUILD trigger');
  t.is(errorOf('FROM a\nONBUILD MAINTAINER b\n'), 'Dockerfile:2:1: MAINTAINER is not allowed as an ONBUILD trigger');
  t.is(errorOf('FROM a\nONBUILD BOGUS b\n'), 'Dockerfile:2:1: unknown instruction: BOGUS');
  t.is(errorOf('FROM a\nONBUILD RUN --mount=x y\n').split(':').slice(0, 4).join(':'), 'Dockerfile:2:1: RUN --mount is not supported');
});
