package provider

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/terraform-plugin-framework-validators/stringvalidator"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"

	"github.com/kubesmith/terraform-provider-kubesmith/internal/engine"
)

// Environment variables read when the provider block leaves a value out.
const (
	// EnvBundle names the artifact bundle directory when artifacts.bundle and artifacts.mirror are unset.
	EnvBundle = "KUBESMITH_BUNDLE"
	// EnvSSHKeyPath names the SSH private key file when ssh.private_key_path is unset.
	EnvSSHKeyPath = "KUBESMITH_SSH_KEY_PATH"
)

// Provider-level defaults.
const (
	defaultSSHUser        = "root"
	defaultSSHPort        = 22
	defaultConnectTimeout = 5 * time.Minute
)

// providerModel is the provider block.
type providerModel struct {
	SSH        types.Object `tfsdk:"ssh"`
	Artifacts  types.Object `tfsdk:"artifacts"`
	LibvirtURI types.String `tfsdk:"libvirt_uri"`
}

// sshModel is the provider's ssh attribute.
type sshModel struct {
	User           types.String `tfsdk:"user"`
	Port           types.Int64  `tfsdk:"port"`
	PrivateKeyPath types.String `tfsdk:"private_key_path"`
	PrivateKey     types.String `tfsdk:"private_key"`
	UseAgent       types.Bool   `tfsdk:"use_agent"`
	KnownHostsPath types.String `tfsdk:"known_hosts_path"`
	ConnectTimeout types.String `tfsdk:"connect_timeout"`
	Bastion        types.Object `tfsdk:"bastion"`
}

// bastionModel is ssh.bastion.
type bastionModel struct {
	Address       types.String `tfsdk:"address"`
	Port          types.Int64  `tfsdk:"port"`
	User          types.String `tfsdk:"user"`
	HostPublicKey types.String `tfsdk:"host_public_key"`
}

// artifactsModel is the provider's artifacts attribute.
type artifactsModel struct {
	Bundle   types.String `tfsdk:"bundle"`
	Mirror   types.String `tfsdk:"mirror"`
	CacheDir types.String `tfsdk:"cache_dir"`
}

func providerSchema() schema.Schema {
	return schema.Schema{
		Description: "kubesmith installs highly available Kubernetes clusters on hosts it reaches over SSH, " +
			"from an air-gapped artifact bundle.",
		MarkdownDescription: "kubesmith installs highly available Kubernetes clusters on hosts it reaches over SSH, " +
			"from an air-gapped, checksummed artifact bundle. The provider block holds the defaults every resource " +
			"uses: how to reach hosts (`ssh`) and where binaries and images come from (`artifacts`).",
		Attributes: map[string]schema.Attribute{
			"ssh": schema.SingleNestedAttribute{
				Optional:            true,
				Description:         "How kubesmith reaches hosts over SSH. Host-level user and port override these defaults.",
				MarkdownDescription: "How kubesmith reaches hosts over SSH. Host-level `user` and `port` override these defaults.",
				Attributes: map[string]schema.Attribute{
					"user": schema.StringAttribute{
						Optional:            true,
						Description:         "Login user. Defaults to root; any other user needs passwordless sudo.",
						MarkdownDescription: "Login user. Defaults to `root`; any other user needs passwordless `sudo`.",
					},
					"port": schema.Int64Attribute{
						Optional:            true,
						Description:         "SSH port. Defaults to 22.",
						MarkdownDescription: "SSH port. Defaults to `22`.",
					},
					"private_key_path": schema.StringAttribute{
						Optional: true,
						Description: "Path of an SSH private key on the machine that runs Terraform; ~ is expanded. " +
							"Falls back to the KUBESMITH_SSH_KEY_PATH environment variable.",
						MarkdownDescription: "Path of an SSH private key on the machine that runs Terraform; `~` is expanded. " +
							"Falls back to the `KUBESMITH_SSH_KEY_PATH` environment variable.",
					},
					"private_key": schema.StringAttribute{
						Optional:  true,
						Sensitive: true,
						Description: "An unencrypted PEM or OpenSSH private key given directly, for example from an ephemeral " +
							"value or a secret store. Provider configuration is never written to state.",
						MarkdownDescription: "An unencrypted PEM or OpenSSH private key given directly, for example from an " +
							"ephemeral value or a secret store. Provider configuration is never written to state, so this " +
							"value is effectively write-only.",
						Validators: []validator.String{
							stringvalidator.ConflictsWith(path.MatchRelative().AtParent().AtName("private_key_path")),
						},
					},
					"use_agent": schema.BoolAttribute{
						Optional:            true,
						Description:         "Authenticate with the ssh-agent at SSH_AUTH_SOCK. Defaults to false.",
						MarkdownDescription: "Authenticate with the ssh-agent at `SSH_AUTH_SOCK`. Defaults to `false`.",
					},
					"known_hosts_path": schema.StringAttribute{
						Optional: true,
						Description: "A known_hosts file used for hosts that have no host_public_key. Without it every host " +
							"must pin its key.",
						MarkdownDescription: "A `known_hosts` file used for hosts that have no `host_public_key`. Without it " +
							"every host must pin its key; kubesmith never accepts an unknown host key.",
					},
					"connect_timeout": schema.StringAttribute{
						Optional:            true,
						Description:         "How long to wait for a host to accept SSH, as a Go duration. Defaults to 5m.",
						MarkdownDescription: "How long to wait for a host to accept SSH, as a Go duration such as `90s`. Defaults to `5m`.",
						Validators:          []validator.String{durationValidator{}},
					},
					"bastion": schema.SingleNestedAttribute{
						Optional:            true,
						Description:         "A jump host every connection goes through.",
						MarkdownDescription: "A jump host every connection goes through.",
						Attributes: map[string]schema.Attribute{
							"address": schema.StringAttribute{
								Required:            true,
								Description:         "Address of the jump host.",
								MarkdownDescription: "Address of the jump host.",
							},
							"port": schema.Int64Attribute{
								Optional:            true,
								Description:         "SSH port of the jump host. Defaults to 22.",
								MarkdownDescription: "SSH port of the jump host. Defaults to `22`.",
							},
							"user": schema.StringAttribute{
								Optional:            true,
								Description:         "Login user on the jump host. Defaults to ssh.user.",
								MarkdownDescription: "Login user on the jump host. Defaults to `ssh.user`.",
							},
							"host_public_key": schema.StringAttribute{
								Optional:            true,
								Description:         "The jump host's public key (\"ssh-ed25519 AAAA...\"); required unless known_hosts_path is set.",
								MarkdownDescription: "The jump host's public key (`ssh-ed25519 AAAA...`); required unless `known_hosts_path` is set.",
							},
						},
					},
				},
			},
			"artifacts": schema.SingleNestedAttribute{
				Optional: true,
				Description: "Where binaries and images come from: a local bundle or a mirror, never the internet. " +
					"Give at most one of bundle and mirror; the default is the bundle at $XDG_CACHE_HOME/kubesmith/bundle.",
				MarkdownDescription: "Where binaries and images come from: a local bundle or a mirror, never the internet. " +
					"Every file is checked against the bundle manifest's sha256. Give at most one of `bundle` and `mirror`; " +
					"without either, `KUBESMITH_BUNDLE` or `${XDG_CACHE_HOME:-~/.cache}/kubesmith/bundle` is used.",
				Attributes: map[string]schema.Attribute{
					"bundle": schema.StringAttribute{
						Optional: true,
						Description: "Directory of a bundle built by `make artifacts`; ~ is expanded. Falls back to " +
							"KUBESMITH_BUNDLE, then ${XDG_CACHE_HOME:-~/.cache}/kubesmith/bundle.",
						MarkdownDescription: "Directory of a bundle built by `make artifacts`; `~` is expanded. Falls back to " +
							"`KUBESMITH_BUNDLE`, then `${XDG_CACHE_HOME:-~/.cache}/kubesmith/bundle`.",
						Validators: []validator.String{
							stringvalidator.ConflictsWith(path.MatchRelative().AtParent().AtName("mirror")),
						},
					},
					"mirror": schema.StringAttribute{
						Optional:            true,
						Description:         "HTTP(S) URL of a served bundle. Files are downloaded, verified and cached in cache_dir.",
						MarkdownDescription: "HTTP(S) URL of a served bundle. Files are downloaded, verified against the manifest and cached in `cache_dir`.",
						Validators:          []validator.String{urlValidator{}},
					},
					"cache_dir": schema.StringAttribute{
						Optional:            true,
						Description:         "Cache for mirror downloads and file hashes. Defaults to ${XDG_CACHE_HOME:-~/.cache}/kubesmith/cache.",
						MarkdownDescription: "Cache for mirror downloads and file hashes. Defaults to `${XDG_CACHE_HOME:-~/.cache}/kubesmith/cache`.",
					},
				},
			},
			"libvirt_uri": schema.StringAttribute{
				Optional: true,
				Description: "libvirt connection URI (for example qemu:///system or qemu+ssh://user@host/system), used only " +
					"by libvirt-backed machines.",
				MarkdownDescription: "libvirt connection URI (for example `qemu:///system` or `qemu+ssh://user@host/system`), " +
					"used only by libvirt-backed machines.",
			},
		},
	}
}

// envLookup abstracts the process environment so that resolution is testable without touching it.
type envLookup interface {
	Getenv(key string) string
	UserHomeDir() (string, error)
}

// osEnv reads the real process environment.
type osEnv struct{}

func (osEnv) Getenv(key string) string     { return os.Getenv(key) }
func (osEnv) UserHomeDir() (string, error) { return os.UserHomeDir() }

// resolvedConfig is the provider block after defaults and environment fallbacks.
type resolvedConfig struct {
	ssh        engine.SSH
	artifacts  engine.Artifacts
	libvirtURI string
}

// resolveProviderConfig applies defaults and environment fallbacks to a fully known provider block.
func resolveProviderConfig(ctx context.Context, cfg providerModel, env envLookup) (resolvedConfig, diag.Diagnostics) {
	var diags diag.Diagnostics
	out := resolvedConfig{
		ssh:        engine.SSH{User: defaultSSHUser, Port: defaultSSHPort, ConnectTimeout: defaultConnectTimeout},
		libvirtURI: cfg.LibvirtURI.ValueString(),
	}

	var s sshModel
	if !cfg.SSH.IsNull() {
		diags.Append(cfg.SSH.As(ctx, &s, basetypes.ObjectAsOptions{})...)
		if diags.HasError() {
			return out, diags
		}
	}
	if v := s.User.ValueString(); v != "" {
		out.ssh.User = v
	}
	if !s.Port.IsNull() {
		out.ssh.Port = int(s.Port.ValueInt64())
	}
	keyPath := s.PrivateKeyPath.ValueString()
	if keyPath == "" && s.PrivateKey.ValueString() == "" {
		keyPath = env.Getenv(EnvSSHKeyPath)
	}
	var err error
	if out.ssh.PrivateKeyPath, err = expandHome(keyPath, env); err != nil {
		diags.AddAttributeError(path.Root("ssh").AtName("private_key_path"), "Unable to Expand Path", err.Error())
	}
	out.ssh.PrivateKey = s.PrivateKey.ValueString()
	out.ssh.UseAgent = s.UseAgent.ValueBool()
	if out.ssh.KnownHostsPath, err = expandHome(s.KnownHostsPath.ValueString(), env); err != nil {
		diags.AddAttributeError(path.Root("ssh").AtName("known_hosts_path"), "Unable to Expand Path", err.Error())
	}
	if v := s.ConnectTimeout.ValueString(); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			diags.AddAttributeError(path.Root("ssh").AtName("connect_timeout"), "Invalid Duration", err.Error())
		}
		out.ssh.ConnectTimeout = d
	}
	if !s.Bastion.IsNull() {
		var b bastionModel
		diags.Append(s.Bastion.As(ctx, &b, basetypes.ObjectAsOptions{})...)
		out.ssh.Bastion = &engine.Host{
			Name:          "bastion",
			Address:       b.Address.ValueString(),
			Port:          int(b.Port.ValueInt64()),
			User:          b.User.ValueString(),
			HostPublicKey: b.HostPublicKey.ValueString(),
		}
		if out.ssh.Bastion.Port == 0 {
			out.ssh.Bastion.Port = defaultSSHPort
		}
		if out.ssh.Bastion.User == "" {
			out.ssh.Bastion.User = out.ssh.User
		}
	}

	var a artifactsModel
	if !cfg.Artifacts.IsNull() {
		diags.Append(cfg.Artifacts.As(ctx, &a, basetypes.ObjectAsOptions{})...)
		if diags.HasError() {
			return out, diags
		}
	}
	cacheHome, err := cacheHome(env)
	if err != nil {
		diags.AddError("Unable to Find the Cache Directory", err.Error())
		return out, diags
	}
	out.artifacts.MirrorURL = a.Mirror.ValueString()
	if out.artifacts.MirrorURL == "" {
		bundle := a.Bundle.ValueString()
		if bundle == "" {
			bundle = env.Getenv(EnvBundle)
		}
		if bundle == "" {
			bundle = filepath.Join(cacheHome, "kubesmith", "bundle")
		}
		if out.artifacts.BundleDir, err = expandHome(bundle, env); err != nil {
			diags.AddAttributeError(path.Root("artifacts").AtName("bundle"), "Unable to Expand Path", err.Error())
		}
	}
	cacheDir := a.CacheDir.ValueString()
	if cacheDir == "" {
		cacheDir = filepath.Join(cacheHome, "kubesmith", "cache")
	}
	if out.artifacts.CacheDir, err = expandHome(cacheDir, env); err != nil {
		diags.AddAttributeError(path.Root("artifacts").AtName("cache_dir"), "Unable to Expand Path", err.Error())
	}
	return out, diags
}

// cacheHome is $XDG_CACHE_HOME, or ~/.cache when it is unset.
func cacheHome(env envLookup) (string, error) {
	if v := env.Getenv("XDG_CACHE_HOME"); v != "" {
		return v, nil
	}
	home, err := env.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("XDG_CACHE_HOME is unset and the home directory is unknown: %w", err)
	}
	return filepath.Join(home, ".cache"), nil
}

// expandHome replaces a leading "~" or "~/" with the home directory.
func expandHome(p string, env envLookup) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home, err := env.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("expand %q: %w", p, err)
	}
	return filepath.Join(home, strings.TrimPrefix(p, "~")), nil
}

// urlValidator accepts http and https URLs with a host.
type urlValidator struct{}

func (urlValidator) Description(context.Context) string { return "value must be an http or https URL" }

func (v urlValidator) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (urlValidator) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	u, err := url.Parse(req.ConfigValue.ValueString())
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		resp.Diagnostics.AddAttributeError(req.Path, "Invalid Mirror URL",
			fmt.Sprintf("%q is not an http:// or https:// URL with a host.", req.ConfigValue.ValueString()))
	}
}
