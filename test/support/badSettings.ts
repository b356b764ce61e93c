/**
 * Bad values for every variable the demo reads, generated per kind of value,
 * for the unit tests (`test/demo/Config.test.ts`) and the fault matrix.
 */

/** Values that are not a plain whole number: empty, spaces, signs, hex, floats, exponents, huge, unicode digits. */
export const notWholeNumbers: ReadonlyArray<string> = [
  "",
  " ",
  "\t",
  " 42",
  "42 ",
  "4 2",
  "-1",
  "+1",
  "-0",
  "1.5",
  "1.0",
  "1e3",
  "0x10",
  "0o7",
  "0b1",
  "1_000",
  "12abc",
  "abc",
  "NaN",
  "Infinity",
  "99999999999999999999",
  "\uff11\uff12",
  "\u00a042"
]

export interface BadSetting {
  readonly variable: string
  readonly value: string
  /** Whether the refusal names the variable (the library's budget errors name the option instead). */
  readonly namesVariable: boolean
}

const each = (variable: string, values: ReadonlyArray<string>, namesVariable = true): Array<BadSetting> =>
  values.map((value) => ({ variable, value, namesVariable }))

export const badSettings: ReadonlyArray<BadSetting> = [
  ...each("PORT", [...notWholeNumbers, "65536", "70000", "100000"]),
  ...each("HEALTH_PORT", [...notWholeNumbers, "65536", "99999"]),
  ...each("WORKERS", [...notWholeNumbers, "0", "257", "100000"]),
  ...each("HOST", [
    "",
    " ",
    " 127.0.0.1",
    "127.0.0.1 ",
    "local host",
    "local_host",
    "-leading",
    "trailing-",
    "a..b",
    ".",
    "999.1.1.1",
    "1.2.3",
    "http://localhost",
    "[::1]",
    "host:80",
    "x".repeat(64),
    "a.".repeat(130)
  ]),
  ...each("DATA_DIR", ["", " ", "\t", " /tmp/x", "/tmp/x ", "/tmp/a\nb"]),
  ...each("DATABASE_URL", [
    "",
    " ",
    "postgres",
    "localhost:5432",
    "mysql://app@db/test",
    "http://localhost/test",
    " postgres://app@db/test",
    "postgres://app@db/test ",
    "postgres://app@db:0/test",
    "postgres://app@db:99999/test",
    "postgres://app@db/%zz",
    "postgres://app@db/test?sslmode=maybe",
    "postgres://app@db/test?port=x",
    "postgres://app@db/test?connect_timeout=soon"
  ]),
  // Without DATABASE_URL these mean nothing: a fleet missing its URL would run each replica on its own journal.
  ...each("JOBS_TABLE", ["jobs", "", "Jobs", "1jobs", "jobs;drop", `"jobs"`, "x".repeat(51)]),
  ...each("JOBS_LEASE_MS", ["10000", "", "0", "1s"]),
  ...each("WINDDOWN_TIMEOUT", ["", " ", "25", "abc", "-1s", "0x10s"]),
  ...each("WINDDOWN_SIGNALS", ["", "SIGFOO", "SIGTERM,SIGKILL"]),
  ...each("WINDDOWN_SIGNAL_EXIT", ["", "maybe"]),
  ...each("WINDDOWN_REPORT_JSON", ["", "perhaps"]),
  ...each("WINDDOWN_PRE_STOP", ["soon"]),
  // Well-formed, but a budget that cannot work: the library names the option, not the variable (issue 12 #5).
  ...each("WINDDOWN_TIMEOUT", ["1ms"], false)
]
