package platform

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awscognito"
	"github.com/aws/jsii-runtime-go"

	"github.com/scrapeplatform/platform/infra/stage"
)

// identity is who issues the tokens the JWT authorizer accepts: the stage's own Cognito user pool, or an
// external provider named in the settings. Nothing else reaches the authorizer, so no placeholder can.
type identity struct {
	issuer    *string
	audiences *[]*string
	scopes    []string
	// Set for a Cognito identity only.
	pool     awscognito.UserPool
	client   awscognito.UserPoolClient
	tokenURL *string
}

func newIdentity(st awscdk.Stack, s stage.Settings) *identity {
	if s.Identity.Provider == stage.ProviderExternal {
		return &identity{issuer: jsii.String(s.Identity.Issuer), audiences: jsii.Strings(s.Identity.Audiences...), scopes: s.RequiredScopes()}
	}

	// A user pool for machine clients: no self sign-up and no users. People who need tokens get an app
	// client of their own (README: Deploy, identity).
	pool := awscognito.NewUserPool(st, jsii.String("UserPool"), &awscognito.UserPoolProps{
		UserPoolName:      jsii.String("scraping-" + s.Name),
		SelfSignUpEnabled: jsii.Bool(false),
		FeaturePlan:       awscognito.FeaturePlan_ESSENTIALS,
		SignInAliases:     &awscognito.SignInAliases{Username: jsii.Bool(true)},
		// Users are not expected, but if an operator ever adds one, it meets the strict defaults.
		PasswordPolicy: &awscognito.PasswordPolicy{
			MinLength: jsii.Number(14), RequireDigits: jsii.Bool(true), RequireLowercase: jsii.Bool(true),
			RequireUppercase: jsii.Bool(true), RequireSymbols: jsii.Bool(true),
		},
		Mfa:                awscognito.Mfa_REQUIRED,
		MfaSecondFactor:    &awscognito.MfaSecondFactor{Otp: jsii.Bool(true), Sms: jsii.Bool(false)},
		AccountRecovery:    awscognito.AccountRecovery_NONE,
		DeletionProtection: jsii.Bool(s.RetainData),
		RemovalPolicy:      removalPolicy(s),
	})
	suppress(pool,
		finding("AwsSolutions-COG3",
			"Threat protection (advanced security) evaluates user sign-ins; this pool has no users and no self sign-up, and its only "+
				"clients use the client-credentials grant, which threat protection does not cover. The Plus plan it needs would add cost for nothing."),
		finding("AwsSolutions-COG8",
			"The Plus feature plan adds threat protection and compromised-password checks for user sign-ins; this pool serves machine "+
				"clients through the client-credentials grant only (no users, no self sign-up), which the Plus features do not cover."))

	scrape := awscognito.NewResourceServerScope(&awscognito.ResourceServerScopeProps{
		ScopeName:        jsii.String(strings.TrimPrefix(stage.ScrapeScope, stage.ResourceServer+"/")),
		ScopeDescription: jsii.String("Run scrapes and read the stage's status and jobs"),
	})
	server := pool.AddResourceServer(jsii.String("ResourceServer"), &awscognito.UserPoolResourceServerOptions{
		Identifier:                 jsii.String(stage.ResourceServer),
		UserPoolResourceServerName: jsii.String("scraping API " + s.Name),
		Scopes:                     &[]awscognito.ResourceServerScope{scrape},
	})

	// The token endpoint lives on the pool's domain. A prefix is unique per region across every account, so
	// the default carries the account id.
	prefix := jsii.String(s.Identity.DomainPrefix)
	if s.Identity.DomainPrefix == "" {
		prefix = awscdk.Fn_Join(jsii.String(""), &[]*string{jsii.String("scraping-" + s.Name + "-"), st.Account()})
	}
	domain := pool.AddDomain(jsii.String("Domain"), &awscognito.UserPoolDomainOptions{
		CognitoDomain: &awscognito.CognitoDomainOptions{DomainPrefix: prefix},
	})

	// The machine-to-machine client: client-credentials grant only, with a generated secret; the smoke check
	// and `make token` read the secret with cognito-idp:DescribeUserPoolClient (the deployer's credentials).
	client := pool.AddClient(jsii.String("MachineClient"), &awscognito.UserPoolClientOptions{
		UserPoolClientName: jsii.String("scraping-" + s.Name + "-machine"),
		GenerateSecret:     jsii.Bool(true),
		AuthFlows:          &awscognito.AuthFlow{},
		OAuth: &awscognito.OAuthSettings{
			Flows:  &awscognito.OAuthFlows{ClientCredentials: jsii.Bool(true)},
			Scopes: &[]awscognito.OAuthScope{awscognito.OAuthScope_ResourceServer(server, scrape)},
		},
		AccessTokenValidity:        awscdk.Duration_Minutes(jsii.Number(s.Identity.AccessTokenMinutes)),
		EnableTokenRevocation:      jsii.Bool(true),
		PreventUserExistenceErrors: jsii.Bool(true),
		SupportedIdentityProviders: &[]awscognito.UserPoolClientIdentityProvider{awscognito.UserPoolClientIdentityProvider_COGNITO()},
	})
	client.Node().AddDependency(server)

	return &identity{
		// Cognito's access tokens carry no aud claim; API Gateway then matches client_id against the audiences.
		issuer:    pool.UserPoolProviderUrl(),
		audiences: &[]*string{client.UserPoolClientId()},
		scopes:    s.RequiredScopes(),
		pool:      pool,
		client:    client,
		tokenURL:  awscdk.Fn_Join(jsii.String(""), &[]*string{domain.BaseUrl(nil), jsii.String("/oauth2/token")}),
	}
}
