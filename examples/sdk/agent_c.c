/* An agent-style program with libsilo-client: write a script into a sandbox,
 * run it streaming its output, read the result file. Run by the suite
 * (meson test sdk-c-example) against a real silod.
 *   cc agent_c.c $(pkg-config --cflags --libs silo-client) or -lsilo-client */
#include <stdio.h>
#include <string.h>

#include <silo/client.h>

static int print_chunk(void *ud, int stream, const void *data, size_t len)
{
	printf("[%s] %.*s", stream == SILO_CLIENT_STDOUT ? "stdout" : "stderr", (int)len, (const char *)data);
	return 0; /* go on */
}

int main(void)
{
	silo_client *c;
	silo_error err;
	char id[SILO_ID_MAX], *result = NULL;
	size_t len = 0;
	if (silo_client_new(NULL, &c, &err) < 0 ||
	    silo_client_create(c, "{\"provider\":\"namespace\",\"memory_mb\":128}", 0, id, NULL, &err) < 0) {
		fprintf(stderr, "silo: %s: %s\n", silo_code_name(err.code), err.message);
		return 125;
	}
	const char *script = "for i in 1 2 3; do echo step $i; done; echo '{\"steps\": 3}' > /tmp/result.json\n";
	const char *const argv[] = {"sh", "/tmp/task.sh", NULL};
	silo_client_exec_opts o = {.size = sizeof o, .argv = argv, .timeout_ms = 60000};
	silo_client_exit ex = {0};
	int rc = 125;
	if (silo_client_file_write(c, id, "/tmp/task.sh", script, strlen(script), 0755, &err) == 0 &&
	    silo_client_exec(c, id, &o, print_chunk, NULL, &ex, &err) == 0 &&
	    silo_client_file_read(c, id, "/tmp/result.json", &result, &len, &err) == 0) {
		printf("exit %d\nresult %s", ex.exit_code, result);
		rc = ex.exit_code;
	} else
		fprintf(stderr, "silo: %s [%s]: %s\n", silo_code_name(err.code), err.vm_id, err.message);
	silo_client_free_buf(result);
	silo_client_delete(c, id, 0, NULL, &err);
	silo_client_free(c);
	return rc;
}
