package main

// pxperf completion, and what the commands complete: enum flag values
// locally, config paths from the config's descriptor, entry ids from a
// running server.

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pxperf/pxperf/client"
	pxperfv1 "github.com/pxperf/pxperf/gen/pxperf/v1"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// completionTimeout bounds the call that completes entry ids: a shell
// waiting on a Tab must not hang on a server that does not answer.
const completionTimeout = time.Second

// completionEntries is how many entry ids, newest first, are offered.
const completionEntries = 50

// shells are the shells pxperf completion writes scripts for.
var shells = []string{"bash", "zsh", "fish", "powershell"}

// completion returns pxperf completion SHELL: cobra's generated script,
// with descriptions, on stdout.
func (c *cli) completion() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "completion SHELL",
		Short: "shell completion script: bash, zsh, fish or powershell",
		Long: `Writes the shell completion script for SHELL (bash, zsh, fish or powershell)
on standard output. Commands, subcommands and flags complete, and flag values
that are a fixed set (--log-format, resources list --type, optimize's actions,
filter keys); config get and set complete config paths; get and replay
complete the ids of the newest entries of the server at --server (PXPERF_SERVER),
when it answers within a second. bash needs the bash-completion package.`,
		Example: examples([]string{
			"completion bash > /etc/bash_completion.d/pxperf   # or, for this shell: source <(pxperf completion bash)",
			`completion zsh > "${fpath[1]}/_pxperf"                # with compinit in ~/.zshrc`,
			"completion fish > ~/.config/fish/completions/pxperf.fish",
			"completion powershell | Out-String | Invoke-Expression",
		}),
		Args:              c.nargs(1, 1),
		ValidArgs:         shells,
		ValidArgsFunction: completeFrom(shells),
		RunE: func(cmd *cobra.Command, args []string) error {
			root, w := cmd.Root(), c.stdout
			var err error
			switch args[0] {
			case "bash":
				err = root.GenBashCompletionV2(w, true)
			case "zsh":
				err = root.GenZshCompletion(w)
			case "fish":
				err = root.GenFishCompletion(w, true)
			case "powershell":
				err = root.GenPowerShellCompletionWithDesc(w)
			default:
				c.writeUsage(cmd)
				return usageError("completion: unknown shell %q; give bash, zsh, fish or powershell", args[0])
			}
			if err != nil {
				return failure("completion: %w", err)
			}
			return nil
		},
	}
	return cmd
}

// completeFrom returns a completion of one of values, not files.
func completeFrom(values []string) cobra.CompletionFunc {
	return func(*cobra.Command, []string, string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return values, cobra.ShellCompDirectiveNoFileComp
	}
}

// completeValues makes cmd's flag complete to values. The flag must be
// defined: a misspelt name is a bug, and panics when the tree is built.
func completeValues(cmd *cobra.Command, flag string, values ...string) {
	completeFlag(cmd, flag, completeFrom(values))
}

// completeFlag makes cmd's flag complete with fn; like [completeValues],
// it panics for a flag that is not defined.
func completeFlag(cmd *cobra.Command, flag string, fn cobra.CompletionFunc) {
	if err := cmd.RegisterFlagCompletionFunc(flag, fn); err != nil {
		panic(err)
	}
}

// enumNames returns the values of an enum as the CLI takes them: lower
// case, without the type's prefix, dashes for underscores (resource type
// RESOURCE_TYPE_SUBSCRIBER is subscriber, optimize action
// OPTIMIZE_ACTION_RELEASE_MEMORY is release-memory), without UNSPECIFIED.
func enumNames(ed protoreflect.EnumDescriptor, prefix string) []string {
	var names []string
	values := ed.Values()
	for i := range values.Len() {
		v := values.Get(i)
		if v.Number() == 0 {
			continue
		}
		name := strings.ToLower(strings.TrimPrefix(string(v.Name()), prefix))
		names = append(names, strings.ReplaceAll(name, "_", "-"))
	}
	return names
}

// completeOptimizeActions completes optimize's ACTION arguments: those not
// given yet.
func completeOptimizeActions(_ *cobra.Command, args []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	for _, name := range enumNames(pxperfv1.OptimizeAction(0).Descriptor(), "OPTIMIZE_ACTION_") {
		if !slices.Contains(args, name) {
			out = append(out, name)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// filterKeys are the starts of filter terms (tail --help, README
// "Filters"), offered for a --filter value.
var filterKeys = []string{
	"method:", "status:", "host:", "url:", "regex:", "mime:", "body:",
	"is:pending", "is:completed", "is:failed", "is:tunnel", "is:error",
	"proxy:direct", "proxy:upstream",
	"slower-than:", "larger-than:", "smaller-than:",
}

// completeFilter completes the last term of a --filter value with a
// filter key, keeping the terms before it; no space follows, since a key
// wants its value.
func completeFilter(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	before, last := "", toComplete
	if i := strings.LastIndexByte(toComplete, ' '); i >= 0 {
		before, last = toComplete[:i+1], toComplete[i+1:]
	}
	neg := ""
	if rest, ok := strings.CutPrefix(last, "-"); ok {
		neg, last = "-", rest
	}
	var out []cobra.Completion
	for _, k := range filterKeys {
		if strings.HasPrefix(k, last) {
			out = append(out, before+neg+k)
		}
	}
	return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
}

// configPaths returns the config's paths as config get and set take them:
// its groups ("throttle") and every single field in them
// ("throttle.mode"), as [client.ConfigFieldPaths] walks them.
func configPaths() (groups, fields []string) {
	top := (&pxperfv1.Config{}).ProtoReflect().Descriptor().Fields()
	for i := range top.Len() {
		name := string(top.Get(i).Name())
		paths, err := client.ConfigFieldPaths(name)
		if err != nil {
			continue // cannot happen: name is the descriptor's own
		}
		if len(paths) != 1 || paths[0] != name {
			groups = append(groups, name)
		}
		fields = append(fields, paths...)
	}
	return groups, fields
}

// completeConfigGet completes config get's PATH arguments: groups and
// fields.
func completeConfigGet(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	groups, fields := configPaths()
	return withPrefix(append(groups, fields...), toComplete), cobra.ShellCompDirectiveNoFileComp
}

// completeConfigSet completes config set's PATH=VALUE arguments up to the
// "=": the value is the user's.
func completeConfigSet(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if strings.Contains(toComplete, "=") {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	_, fields := configPaths()
	out := withPrefix(fields, toComplete)
	for i := range out {
		out[i] += "="
	}
	return out, cobra.ShellCompDirectiveNoSpace | cobra.ShellCompDirectiveNoFileComp
}

// withPrefix returns those of list that start with prefix.
func withPrefix(list []string, prefix string) []string {
	var out []string
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}

// completeEntryID returns a completion of an ID argument (get, replay):
// the ids of the newest entries of the server conn names, each with its
// method and URL, newest first. When the server does not answer within
// completionTimeout, or the ID is given already, it offers nothing, and no
// file names either.
func (c *cli) completeEntryID(conn *connFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		none := cobra.ShellCompDirectiveNoFileComp
		if len(args) > 0 || conn.applyEnv(cmd.Flags(), c.getenv) != nil {
			return nil, none
		}
		cl, err := conn.dial()
		if err != nil {
			return nil, none
		}
		defer cl.Close()
		ctx := cmd.Context()
		if ctx == nil {
			ctx = context.Background()
		}
		ctx, cancel := context.WithTimeout(ctx, completionTimeout)
		defer cancel()
		resp, err := cl.ListEntries(ctx, &pxperfv1.ListEntriesRequest{PageSize: completionEntries})
		if err != nil {
			return nil, none
		}
		var out []cobra.Completion
		for _, e := range resp.GetEntries() {
			id := strconv.FormatUint(e.GetId(), 10)
			if strings.HasPrefix(id, toComplete) {
				out = append(out, cobra.CompletionWithDesc(id, e.GetMethod()+" "+e.GetUrl()))
			}
		}
		return out, none | cobra.ShellCompDirectiveKeepOrder
	}
}
