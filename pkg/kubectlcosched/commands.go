package kubectlcosched

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/cosched/cosched/pkg/explain"
)

const (
	outputWide = "wide"
	outputJSON = "json"
	outputYAML = "yaml"
)

func newGetCommand(o *Options) *cobra.Command {
	var allNamespaces bool
	var output string
	cmd := &cobra.Command{
		Use:   "get [GROUP...]",
		Short: "One line per PodGroup: phase, members bound/placed/pending vs minMember, waiting time, last reason",
		Example: `  kubectl cosched get -n training
  kubectl cosched get -A -o wide
  kubectl cosched get train-a -o yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, outputWide, outputJSON, outputYAML); err != nil {
				return err
			}
			if allNamespaces && len(args) > 0 {
				return fmt.Errorf("a group cannot be named across all namespaces (-A); use -n")
			}
			clients, ns, err := o.Connect()
			if err != nil {
				return err
			}
			if allNamespaces {
				ns = ""
			}
			// Nodes name the domains, which the narrow table leaves out.
			inputs, err := o.gather(cmd.Context(), clients, ns, args, output != "")
			if err != nil {
				return err
			}
			now := o.Now()
			list := make([]explain.Summary, 0, len(inputs))
			for _, in := range inputs {
				list = append(list, explain.Summarize(in, now))
			}
			switch output {
			case outputJSON, outputYAML:
				return write(o.Out, output, listOf(list))
			}
			if len(list) == 0 {
				if ns == "" {
					fmt.Fprintln(o.ErrOut, "No PodGroups found.")
				} else {
					fmt.Fprintf(o.ErrOut, "No PodGroups found in %s namespace.\n", ns)
				}
				return nil
			}
			return explain.PrintTable(o.Out, list, now, explain.TableOptions{WithNamespace: allNamespaces, Wide: output == outputWide})
		},
	}
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "list the PodGroups of all namespaces")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: wide, json or yaml")
	return cmd
}

func newDescribeCommand(o *Options) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "describe [GROUP...]",
		Short: "A PodGroup's members with node and state, its topology domain, timeline and preemptions",
		Long: `A PodGroup's members with node and state, the topology domain of an atomic group,
its timeline (created, first attempt, rejections with reasons, admitted, bound)
and its preemptions. Without GROUP, every PodGroup of the namespace.`,
		Example: `  kubectl cosched describe -n training train-a
  kubectl cosched describe train-a -o json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, outputJSON, outputYAML); err != nil {
				return err
			}
			clients, ns, err := o.Connect()
			if err != nil {
				return err
			}
			inputs, err := o.gather(cmd.Context(), clients, ns, args, true)
			if err != nil {
				return err
			}
			now := o.Now()
			details := make([]explain.Detail, 0, len(inputs))
			for _, in := range inputs {
				details = append(details, explain.Describe(in, now))
			}
			switch output {
			case outputJSON, outputYAML:
				if len(args) == 1 && len(details) == 1 {
					return write(o.Out, output, details[0])
				}
				return write(o.Out, output, listOf(details))
			}
			if len(details) == 0 {
				fmt.Fprintf(o.ErrOut, "No PodGroups found in %s namespace.\n", ns)
				return nil
			}
			for i, d := range details {
				if i > 0 {
					fmt.Fprintln(o.Out)
					fmt.Fprintln(o.Out)
				}
				if err := explain.PrintDetail(o.Out, d, now); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json or yaml (default: text)")
	return cmd
}

func checkOutput(output string, allowed ...string) error {
	if output == "" {
		return nil
	}
	for _, a := range allowed {
		if output == a {
			return nil
		}
	}
	return fmt.Errorf("unknown output format %q: use one of %v", output, allowed)
}

// list wraps items for -o json and -o yaml, as kubectl wraps lists.
type list[T any] struct {
	Items []T `json:"items"`
}

func listOf[T any](items []T) list[T] {
	if items == nil {
		items = []T{}
	}
	return list[T]{Items: items}
}

func write(w io.Writer, format string, v any) error {
	data, err := json.MarshalIndent(v, "", "    ")
	if err != nil {
		return err
	}
	if format == outputYAML {
		if data, err = yaml.JSONToYAML(data); err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", data)
	return err
}
